/**
 * Error kinds shared by every step, and the process exit code each maps to.
 *
 * A task has one place (its `main`) that turns an error into a one-line message and one of these
 * codes; README documents them.
 * @module
 */

/** Exit codes of every task, the CLI and the compiled binary. */
export const ExitCode = {
  /** Finished. */
  ok: 0,
  /** An unexpected failure (a bug): the message and stack are printed. */
  internal: 1,
  /** Bad flags, bad or missing settings, a corrupt run folder. */
  config: 2,
  /** Spotify (API or auth) or an audio-features provider failed. */
  source: 3,
  /** Object store or warehouse (upload, load) failed. */
  storage: 4,
  /** dbt failed (a model or a test). */
  dbt: 5,
  /** Another run holds the lock. */
  locked: 6,
  /** The run was asked to stop (SIGINT/SIGTERM, or its server shutting down): 128 + SIGINT. */
  cancelled: 130,
} as const;

/** One line that lists the exit codes (every task's and the CLI's `--help`). */
export const EXIT_CODES_HELP =
  "Exit codes: 0 ok, 1 internal error, 2 usage/config, 3 Spotify/source, 4 storage/load, 5 dbt, 6 already running, 130 cancelled";

/** Name of an exit code kind. */
export type ExitKind = keyof typeof ExitCode;

/** Base class of expected failures: carries the exit kind and an optional hint for the user. */
export class PipelineError extends Error {
  override name = "PipelineError";
  /** Which exit code this failure ends with. */
  readonly kind: ExitKind;
  /** What the user can do about it, shown after the message. */
  readonly hint?: string;

  constructor(kind: ExitKind, message: string, options?: { hint?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
    this.hint = options?.hint;
  }
}

/** Bad flags or settings: every problem is listed in `problems`. */
export class ConfigError extends PipelineError {
  override name = "ConfigError";
  /** One line per problem, each naming the flag or variable. */
  readonly problems: string[];

  constructor(problems: string[] | string, options?: { hint?: string }) {
    const list = Array.isArray(problems) ? problems : [problems];
    super(
      "config",
      list.length === 1
        ? list[0]!
        : `${list.length} configuration problems:\n  - ${list.join("\n  - ")}`,
      options,
    );
    this.problems = list;
  }
}

/** Spotify or an audio-features provider failed. */
export class SourceError extends PipelineError {
  override name = "SourceError";
  constructor(message: string, options?: { hint?: string; cause?: unknown }) {
    super("source", message, options);
  }
}

/** The object store or the warehouse failed. */
export class StorageError extends PipelineError {
  override name = "StorageError";
  constructor(message: string, options?: { hint?: string; cause?: unknown }) {
    super("storage", message, options);
  }
}

/**
 * A file is not what was written: a hand-off pointing outside its run folder, a Parquet file whose
 * bytes changed after the step that wrote it. Storage (exit 4), not a setting to fix: redo the
 * step that writes it.
 */
export class IntegrityError extends StorageError {
  override name = "IntegrityError";
}

/** dbt failed. */
export class DbtError extends PipelineError {
  override name = "DbtError";
  constructor(message: string, options?: { hint?: string; cause?: unknown }) {
    super("dbt", message, options);
  }
}

/** Another run is in progress. */
export class LockedError extends PipelineError {
  override name = "LockedError";
  /** The run id holding the lock. */
  readonly runId: string;
  constructor(runId: string, message: string) {
    super("locked", message);
    this.runId = runId;
  }
}

/**
 * The run was asked to stop before it finished (a signal, its server shutting down): not a
 * failure of its input or of a service; `--resume` continues it.
 */
export class CancelledError extends PipelineError {
  override name = "CancelledError";
  constructor(message = "Run cancelled before it finished", options?: { hint?: string }) {
    super("cancelled", message, {
      hint: options?.hint ?? "Continue it with `--resume` (the steps that finished are kept).",
    });
  }
}

/** Exit code for any thrown value: a {@link PipelineError}'s kind, otherwise `internal`. */
export function exitCodeOf(error: unknown): number {
  return error instanceof PipelineError ? ExitCode[error.kind] : ExitCode.internal;
}
