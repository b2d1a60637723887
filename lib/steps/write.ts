/**
 * The write step (placeholder until implemented).
 * @module
 */
import { PipelineError } from "../errors.ts";
import type { StepContext, StepOutcome } from "../steps.ts";

/** Runs the write step. */
export function writeStep(_ctx: StepContext): Promise<StepOutcome> {
  return Promise.reject(new PipelineError("internal", "write is not implemented yet"));
}
