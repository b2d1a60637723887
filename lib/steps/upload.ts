/**
 * The upload step (placeholder until implemented).
 * @module
 */
import { PipelineError } from "../errors.ts";
import type { StepContext, StepOutcome } from "../steps.ts";

/** Runs the upload step. */
export function uploadStep(_ctx: StepContext): Promise<StepOutcome> {
  return Promise.reject(new PipelineError("internal", "upload is not implemented yet"));
}
