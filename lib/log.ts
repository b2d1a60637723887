/**
 * Logging: readable lines on a terminal, JSON lines otherwise, with every registered secret
 * redacted from messages and fields before anything is written.
 * @module
 */

/** Log levels, lowest first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** One log record, as written in JSON mode. */
export interface LogRecord {
  ts: string;
  level: LogLevel;
  msg: string;
  [field: string]: unknown;
}

/** Where records go: a function receiving each record after redaction. */
export type LogSink = (record: LogRecord, line: string) => void;

/** Options of {@link Logger}. */
export interface LoggerOptions {
  /** Lowest level written (default `info`). */
  level?: LogLevel;
  /** `pretty` for humans, `json` for machines; default: pretty on a TTY stderr, else json. */
  format?: "pretty" | "json";
  /** Where lines go (default: stderr). */
  sink?: LogSink;
  /** Secret values never to be written (shorter than 6 characters are ignored). */
  secrets?: Iterable<string | undefined>;
  /** Fields added to every record (e.g. run_id). */
  fields?: Record<string, unknown>;
}

const encoder = new TextEncoder();

function stderrIsTerminal(): boolean {
  try {
    return Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}

/**
 * Replaces every occurrence of each secret in `text` with `[REDACTED]` — also its JSON-escaped
 * form (a password with `"` or `\`, a PEM key's line breaks), so redacting JSON text works too.
 */
export function redact(text: string, secrets: Iterable<string>): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length < 6) continue;
    const escaped = JSON.stringify(secret).slice(1, -1);
    for (const form of escaped === secret ? [secret] : [escaped, secret]) {
      if (out.includes(form)) out = out.split(form).join("[REDACTED]");
    }
  }
  return out;
}

/** A structured logger; `child()` adds fields, secrets are shared with children. */
export class Logger {
  #level: number;
  #format: "pretty" | "json";
  #sink: LogSink;
  #secrets: Set<string>;
  #fields: Record<string, unknown>;

  constructor(options: LoggerOptions = {}) {
    this.#level = LEVELS[options.level ?? "info"];
    this.#format = options.format ?? (stderrIsTerminal() ? "pretty" : "json");
    this.#sink = options.sink ??
      ((_record, line) => Deno.stderr.writeSync(encoder.encode(line + "\n")));
    this.#secrets = new Set();
    for (const s of options.secrets ?? []) this.addSecret(s);
    this.#fields = options.fields ?? {};
  }

  /** Registers a value that must never be written (tokens, keys, passwords). */
  addSecret(value: string | undefined): void {
    if (value && value.length >= 6) this.#secrets.add(value);
  }

  /** The registered secrets (for redacting other outputs such as HTTP bodies). */
  get secrets(): ReadonlySet<string> {
    return this.#secrets;
  }

  /** Whether the output is for humans. */
  get pretty(): boolean {
    return this.#format === "pretty";
  }

  /** A logger writing to the same place with extra fields on every record. */
  child(fields: Record<string, unknown>): Logger {
    const child = new Logger({ format: this.#format, sink: this.#sink });
    child.#level = this.#level;
    child.#secrets = this.#secrets;
    child.#fields = { ...this.#fields, ...fields };
    return child;
  }

  /** Redacts registered secrets from a string. */
  redact(text: string): string {
    return redact(text, this.#secrets);
  }

  debug(msg: string, fields?: Record<string, unknown>): void {
    this.#write("debug", msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    this.#write("info", msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.#write("warn", msg, fields);
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.#write("error", msg, fields);
  }

  #write(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    if (LEVELS[level] < this.#level) return;
    const record: LogRecord = {
      ts: new Date().toISOString(),
      level,
      msg,
      ...this.#fields,
      ...fields,
    };
    // redact each string value before encoding: a secret with characters JSON escapes (`"`, `\`,
    // line breaks) would not match in the encoded line, and a match across an escape would
    // break it
    const json = JSON.stringify(
      record,
      (_key, value) => typeof value === "string" ? this.redact(value) : value,
    );
    const clean = JSON.parse(json) as LogRecord; // our own record, just stringified
    const line = this.#format === "json" ? json : this.#prettyLine(clean);
    this.#sink(clean, line);
  }

  #prettyLine(record: LogRecord): string {
    const { ts: _ts, level, msg, ...rest } = record;
    const tag = level === "info" ? "" : `${level.toUpperCase()} `;
    const extras = Object.entries(rest)
      .filter(([k]) => k !== "run_id" && k !== "step")
      .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
    const step = typeof rest.step === "string" ? `[${rest.step}] ` : "";
    // one line on a terminal: names from Spotify or a catalog may hold escapes and line breaks
    return printable(`${tag}${step}${msg}${extras.length ? "  " + extras.join(" ") : ""}`, {
      keepNewlines: false,
    });
  }
}

// C0 and C1 controls, DEL, and the bidirectional overrides/isolates/marks that reorder text
// (tab and, unless asked, line feed kept).
const CONTROLS = String.raw`\u0000-\u0008\u000b-\u001f\u007f-\u009f`;
const BIDI = String.raw`\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069`;
const UNPRINTABLE = new RegExp(`[${CONTROLS}${BIDI}]`, "g");
const UNPRINTABLE_OR_NEWLINE = new RegExp(`[\\u000a${CONTROLS}${BIDI}]`, "g");

/** Options of {@link printable}. */
export interface PrintableOptions {
  /** Keep line breaks (`\n`) as they are (a multi-line summary); default true. */
  keepNewlines?: boolean;
}

/**
 * Text safe to print to a terminal: control characters (terminal escapes, CR, NUL...) and bidi
 * controls become visible escapes (`\u001b`), so a track or artist name can neither drive the
 * terminal nor reorder or hide what is printed. Tabs stay; line breaks stay unless
 * `keepNewlines: false`.
 */
export function printable(text: string, options: PrintableOptions = {}): string {
  const re = options.keepNewlines === false ? UNPRINTABLE_OR_NEWLINE : UNPRINTABLE;
  return text.replace(re, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
