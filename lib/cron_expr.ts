/**
 * Five-field cron expressions (crontab(5): minute, hour, day of month, month, weekday 0-7 with 0
 * and 7 = Sunday), parsed once: the config checks `PIPELINE_SCHEDULE` / `PIPELINE_POLL_SCHEDULE`
 * with it, and the schedule translates the weekday field for `Deno.cron` from it.
 * @module
 */

/** Allowed values of the 5 fields: minute, hour, day of month, month, day of week. */
export const CRON_RANGES: readonly (readonly [number, number])[] = [
  [0, 59],
  [0, 23],
  [1, 31],
  [1, 12],
  [0, 7],
];

/** The values one field selects, in order, each once. */
export type CronField = number[];

/**
 * The values each field of `expr` selects, or `undefined` when it is not a valid 5-field
 * expression (`*`, `a`, `a-b`, each with an optional `/step`, comma-separated; `a/n` runs from `a`
 * to the end of the range, as in cron(8)).
 * @example parseCron("30 6 * * 1-5")![4] // [1, 2, 3, 4, 5]
 */
export function parseCron(expr: string): CronField[] | undefined {
  const fields = expr.trim().split(/\s+/);
  if (fields.length !== 5) return undefined;
  const out: CronField[] = [];
  for (const [i, field] of fields.entries()) {
    const [min, max] = CRON_RANGES[i]!;
    const values = new Set<number>();
    for (const part of field.split(",")) {
      const m = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(part);
      if (!m) return undefined;
      const step = m[4] === undefined ? 1 : Number(m[4]);
      const from = m[1] === "*" ? min : Number(m[2]);
      const to = m[1] === "*"
        ? max
        : m[3] !== undefined
        ? Number(m[3])
        : m[4] !== undefined
        ? max
        : from;
      if (step < 1 || from < min || to > max || from > to) return undefined;
      for (let v = from; v <= to; v += step) values.add(v);
    }
    out.push([...values].sort((a, b) => a - b));
  }
  return out;
}
