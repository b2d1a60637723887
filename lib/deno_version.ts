/**
 * The Deno a command runs on, checked where a command needs a newer one than the toolkit as a
 * whole (e.g. `deno compile --self-extracting`).
 * @module
 */

import { ConfigError } from "./errors.ts";

/** Whether version `have` ("2.5.0") is at least `min` ("2.7.0"); pre-release tags are ignored. */
export function denoAtLeast(have: string, min: string): boolean {
  const parse = (v: string) => v.split(/[-+]/)[0]!.split(".").map((n) => Number(n) || 0);
  const a = parse(have);
  const b = parse(min);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return true;
}

/**
 * Throws a {@link ConfigError} (exit 2) naming `what`, the minimum and this Deno unless this Deno
 * is at least `min`.
 */
export function requireDeno(min: string, what: string, have: string = Deno.version.deno): void {
  if (denoAtLeast(have, min)) return;
  throw new ConfigError(
    `${what} needs Deno ${min} or newer; this is Deno ${have}`,
    { hint: "Upgrade Deno (`deno upgrade`), or run it with `npx -y deno@2 task ...`." },
  );
}
