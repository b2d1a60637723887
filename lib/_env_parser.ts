/**
 * Reading the environment for the config: the process environment plus an optional `.env`, and
 * the {@link Parser} that checks each variable and collects every problem, so all are reported
 * at once.
 * @module
 */

// node:util's parseEnv reads .env files as npm:dotenv does, without loading an npm package at
// start-up (~25 ms: issue 7, start-up). Imported as a namespace: Deno before 2.7 (Deno Deploy's
// 2.5) has no parseEnv, and a named import would fail every module that loads the config.
import * as nodeUtil from "node:util";
import { isAbsolute, relative } from "node:path";
import { parseCron } from "./cron_expr.ts";
import { type ColumnMap, parseColumnMap } from "./features/column_map.ts";
import { ConfigError } from "./errors.ts";

/** A key prefix segment (what lake keys and Snowflake stage paths accept). */
const KEY_SEGMENT = /^[A-Za-z0-9_=.-]+$/;

/** The process environment, under the variables of `envFile` (default `.env`; `false`: none). */
export function readProcessEnv(envFile: string | false | undefined): Record<string, string> {
  const fromFile: Record<string, string> = {};
  if (envFile !== false) {
    const path = envFile ?? ".env";
    let text: string | undefined;
    try {
      text = Deno.readTextFileSync(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    if (text !== undefined) {
      const parseEnv = (nodeUtil as { parseEnv?: (text: string) => Record<string, string> })
        .parseEnv;
      if (typeof parseEnv !== "function") {
        throw new ConfigError(
          `Cannot read ${path}: reading a .env file needs Deno 2.7 or newer (node:util parseEnv), this is Deno ${Deno.version.deno}; set the variables in the environment instead, or upgrade Deno`,
        );
      }
      Object.assign(fromFile, parseEnv(text));
    }
  }
  return { ...fromFile, ...Deno.env.toObject() };
}

/** A host name or IP literal (no scheme, port or path). */
const HOST_NAME =
  /^(\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]+|[A-Za-z0-9]([A-Za-z0-9-]{0,62})?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62})?)*)$/;

/** Collects problems while reading variables, so all are reported at once. */
export class Parser {
  #env: Record<string, string | undefined>;
  #problems: string[] = [];

  constructor(env: Record<string, string | undefined>) {
    this.#env = env;
  }

  problem(message: string): void {
    this.#problems.push(message);
  }

  throwIfProblems(): void {
    if (this.#problems.length) {
      throw new ConfigError(this.#problems, {
        hint: "Set them in the environment or in .env (see docs/settings.md).",
      });
    }
  }

  str(name: string): string | undefined {
    const v = this.#env[name]?.trim();
    return v ? v : undefined;
  }

  required(name: string, purpose: string): string {
    const v = this.str(name);
    if (v === undefined) {
      this.problem(`${name} is required in the prod profile: ${purpose}`);
      return "";
    }
    return v;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const v = this.str(name);
    if (v === undefined) return fallback;
    if ((allowed as readonly string[]).includes(v)) return v as T;
    this.problem(`${name}="${v}" is not valid: expected one of ${allowed.join(", ")}`);
    return fallback;
  }

  list<T extends string>(name: string, allowed: readonly T[], fallback: T[]): T[] {
    const v = this.str(name);
    if (v === undefined) return fallback;
    const items = v.split(",").map((s) => s.trim()).filter(Boolean);
    const bad = items.filter((s) => !(allowed as readonly string[]).includes(s));
    if (bad.length || items.length === 0) {
      this.problem(
        `${name}="${v}" is not valid: expected a comma-separated list of ${allowed.join(", ")}`,
      );
      return fallback;
    }
    return [...new Set(items)] as T[];
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const v = this.str(name);
    if (v === undefined) return fallback;
    if (!/^-?\d+$/.test(v) || Number(v) < min || Number(v) > max) {
      this.problem(`${name}="${v}" is not valid: expected a whole number from ${min} to ${max}`);
      return fallback;
    }
    return Number(v);
  }

  float(name: string, fallback: number, min: number, max: number): number {
    const v = this.str(name);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) {
      this.problem(`${name}="${v}" is not valid: expected a number from ${min} to ${max}`);
      return fallback;
    }
    return n;
  }

  columnMap(name: string): ColumnMap {
    const v = this.str(name);
    if (v === undefined) return {};
    const { map, problems } = parseColumnMap(v);
    for (const problem of problems) this.problem(`${name}: ${problem}`);
    return map;
  }

  bool(name: string, fallback: boolean): boolean {
    const v = this.str(name)?.toLowerCase();
    if (v === undefined) return fallback;
    if (["1", "true", "yes", "on"].includes(v)) return true;
    if (["0", "false", "no", "off"].includes(v)) return false;
    this.problem(`${name}="${v}" is not valid: expected true or false`);
    return fallback;
  }

  url(name: string, fallback: string): string {
    return this.optionalUrl(name) ?? fallback;
  }

  optionalUrl(name: string): string | undefined {
    const v = this.str(name);
    if (v === undefined) return undefined;
    try {
      const u = new URL(v);
      if (u.protocol !== "http:" && u.protocol !== "https:") throw new TypeError("scheme");
      return v.replace(/\/+$/, "");
    } catch {
      this.problem(`${name}="${v}" is not valid: expected an http(s) URL`);
      return undefined;
    }
  }

  ident(name: string, fallback: string): string {
    const v = this.str(name) ?? fallback;
    if (!/^[A-Za-z_][A-Za-z0-9_$]{0,254}$/.test(v)) {
      this.problem(
        `${name}="${v}" is not valid: expected a Snowflake identifier (letters, digits, _ and $, not starting with a digit)`,
      );
    }
    return v;
  }

  cron(name: string, fallback: string): string {
    const v = this.str(name) ?? fallback;
    if (parseCron(v) === undefined) {
      this.problem(
        `${name}="${v}" is not valid: expected a 5-field cron expression such as "0 0 * * *" (minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-7)`,
      );
    }
    return v;
  }

  /** `value` if it matches `pattern`, else a problem naming the variable (value echoed). */
  matching(value: string, name: string, pattern: RegExp, expected: string): string {
    if (value !== "" && !pattern.test(value)) {
      // JSON quoting: the same as "value" for plain text, escaped for control characters
      this.problem(`${name}=${JSON.stringify(value)} is not valid: expected ${expected}`);
    }
    return value;
  }

  host(name: string, fallback: string): string {
    const v = this.str(name) ?? fallback;
    return this.matching(v, name, HOST_NAME, "a host name or IP address (no scheme, port or path)");
  }

  /** A key prefix: `/`-separated segments of letters, digits and `_=.-`, none `.` or `..`. */
  keyPrefix(name: string): string {
    const v = (this.str(name) ?? "").replace(/^\/+|\/+$/g, "");
    if (v && !v.split("/").every((seg) => KEY_SEGMENT.test(seg) && seg !== "." && seg !== "..")) {
      this.problem(
        `${name}="${v}" is not valid: expected key segments of letters, digits and _ = . - separated by /, none "." or ".."`,
      );
    }
    return v;
  }

  /** A problem when `path` is (inside) one of `areas`. */
  notInside(name: string, path: string, areas: [string, string][]): void {
    for (const [what, area] of areas) {
      const rel = relative(area, path);
      if (rel === "" || (!rel.startsWith("..") && !isAbsolute(rel))) {
        this.problem(`${name}="${path}" is not valid: it is inside ${what} (${area})`);
      }
    }
  }
}
