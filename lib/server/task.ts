/**
 * The `serve` task's command-line interface (light: importing it loads no server code).
 * @module
 */

import type { TaskSpec } from "../cli.ts";
import { SETTINGS } from "../settings.ts";

/** `serve`'s help: flags, settings, examples. */
export const SERVE_TASK: TaskSpec = {
  name: "serve",
  summary:
    "HTTP trigger (POST /run-top-tracks, GET /runs, /runs/:id, /healthz, /readyz); --cron adds the daily schedule.",
  flags: {
    cron: {
      type: "boolean",
      description: "also run the pipeline on PIPELINE_SCHEDULE (Deno.cron, UTC)",
    },
  },
  env: SETTINGS.map((s) => s.name),
  examples: [
    "deno task serve",
    "deno task serve --cron",
    'curl -fsS -X POST -H "Authorization: Bearer $PIPELINE_TRIGGER_TOKEN" http://127.0.0.1:8000/run-top-tracks',
  ],
};
