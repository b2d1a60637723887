/** Serve the HTTP trigger (and, with --cron, the daily schedule) until SIGINT/SIGTERM.
 * @example deno task serve --cron
 */
import { taskMain } from "../lib/cli.ts";
import { serve } from "../lib/server/serve.ts";
import { SERVE_TASK } from "../lib/server/task.ts";

/** Entry point; returns the exit code. */
export function main(args: string[]): Promise<number> {
  return taskMain(SERVE_TASK, args, async ({ config, log, flags }) => {
    const stop = new AbortController();
    const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
    const onSignal = () => {
      // A second signal while stopping ends the process at once (the lock is taken over later).
      if (stop.signal.aborted) Deno.exit(130);
      stop.abort();
    };
    for (const s of signals) Deno.addSignalListener(s, onSignal);
    try {
      await serve(config, { log, cron: flags.cron === true, signal: stop.signal });
    } finally {
      for (const s of signals) Deno.removeSignalListener(s, onSignal);
    }
  });
}

if (import.meta.main) Deno.exit(await main(Deno.args));
