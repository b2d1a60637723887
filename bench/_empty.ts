// Intentionally empty: the start-up baseline of `deno task bench` (scenario 5).
