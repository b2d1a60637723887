/**
 * The enrich step (placeholder until implemented).
 * @module
 */
import { PipelineError } from "../errors.ts";
import type { StepContext, StepOutcome } from "../steps.ts";

/** Runs the enrich step. */
export function enrichStep(_ctx: StepContext): Promise<StepOutcome> {
  return Promise.reject(new PipelineError("internal", "enrich is not implemented yet"));
}
