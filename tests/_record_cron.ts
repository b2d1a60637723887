/**
 * Preload for child processes (`deno run --preload tests/_record_cron.ts ...`): replaces
 * `Deno.cron` with a recorder that prints each registration as a JSON line on stderr and
 * schedules nothing, so a test sees exactly what a module registers while it loads. With
 * `TEST_CRON_FIRE=1` each registered handler is also fired once, right away, and its outcome
 * printed (`{"cron_fired": {"name", "ok", "error"?}}`).
 * @module
 */
Object.defineProperty(Deno, "cron", {
  configurable: true,
  writable: true,
  value: (name: string, schedule: unknown, ...rest: unknown[]): Promise<void> => {
    console.error(JSON.stringify({ cron_registered: { name, schedule } }));
    const handler = rest.at(-1) as () => Promise<void> | void;
    if (Deno.env.get("TEST_CRON_FIRE") === "1") {
      setTimeout(async () => {
        try {
          await handler();
          console.error(JSON.stringify({ cron_fired: { name, ok: true } }));
        } catch (error) {
          console.error(JSON.stringify({ cron_fired: { name, ok: false, error: String(error) } }));
        }
      }, 0);
    }
    return Promise.resolve();
  },
});
