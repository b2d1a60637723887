/**
 * The fetch step (placeholder until implemented).
 * @module
 */
import { PipelineError } from "../errors.ts";
import type { StepContext, StepOutcome } from "../steps.ts";

/** Runs the fetch step. */
export function fetchStep(_ctx: StepContext): Promise<StepOutcome> {
  return Promise.reject(new PipelineError("internal", "fetch is not implemented yet"));
}
