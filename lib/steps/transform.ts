/**
 * The transform step (placeholder until implemented).
 * @module
 */
import { PipelineError } from "../errors.ts";
import type { StepContext, StepOutcome } from "../steps.ts";

/** Runs the transform step. */
export function transformStep(_ctx: StepContext): Promise<StepOutcome> {
  return Promise.reject(new PipelineError("internal", "transform is not implemented yet"));
}
