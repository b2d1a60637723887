/**
 * Helpers shared by the Spotify tests: assertions on top of `node:assert/strict` (JSR's
 * @std/assert cannot be downloaded here), a test logger, free ports, and running a task script in
 * a child process with only the given environment.
 * @module
 */

import { fileURLToPath } from "node:url";
import nodeAssert from "node:assert/strict";
import { Logger } from "../lib/log.ts";

/** Root of the project, with a trailing slash. */
export const ROOT: string = fileURLToPath(new URL("..", import.meta.url));

/** Asserts that `value` is truthy. */
export function assert(value: unknown, message?: string): asserts value {
  nodeAssert.ok(value, message);
}

/** Deep strict equality. */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  nodeAssert.deepStrictEqual(actual, expected, message);
}

/** Asserts that `text` contains `part`. */
export function assertStringIncludes(text: string, part: string, message?: string): void {
  nodeAssert.ok(
    text.includes(part),
    message ?? `expected to find ${JSON.stringify(part)} in:\n${text}`,
  );
}

/** Asserts that `text` matches `pattern`. */
export function assertMatch(text: string, pattern: RegExp, message?: string): void {
  nodeAssert.match(text, pattern, message);
}

/** Awaits a rejection (of class `type` when given) and returns the error. */
export async function assertRejects<E extends Error = Error>(
  fn: () => Promise<unknown>,
  type?: abstract new (...args: never[]) => E,
): Promise<E> {
  try {
    await fn();
  } catch (error) {
    if (type && !(error instanceof type)) {
      throw new Error(`expected a ${type.name}, got: ${error}`, { cause: error });
    }
    return error as E;
  }
  throw new Error(`expected a rejection${type ? ` with ${type.name}` : ""}`);
}

/** A logger that keeps its JSON lines (debug level). */
export function testLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const log = new Logger({ format: "json", level: "debug", sink: (_r, line) => lines.push(line) });
  return { log, lines };
}

/** A free TCP port on 127.0.0.1 (bound, read, released). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Command to run `scripts/<script>` with `args` in a child Deno, only `env` set, in `cwd`. */
export function taskCommand(
  script: string,
  args: string[],
  env: Record<string, string>,
  cwd: string,
): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", `${ROOT}deno.json`, `${ROOT}scripts/${script}`, ...args],
    cwd,
    clearEnv: true,
    env: {
      HOME: Deno.env.get("HOME") ?? "/tmp",
      PATH: Deno.env.get("PATH") ?? "",
      NO_COLOR: "1",
      PIPELINE_LOG_FORMAT: "json",
      ...env,
    },
    stdout: "piped",
    stderr: "piped",
  });
}

/** Runs a task script to completion (see {@link taskCommand}). */
export async function runTask(
  script: string,
  args: string[],
  env: Record<string, string>,
  cwd: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await taskCommand(script, args, env, cwd).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}
