/**
 * The import's rows by UTC month, kept on disk between reading the export and writing Parquet:
 * each export file is read whole (one at a time), its rows appended to one file per month; then
 * each month is read back alone. Memory is bounded by one export file or one month, never by the
 * export (which reaches hundreds of MB).
 *
 * A month's file is JSON lines of the values in the stream's column order (no keys: a third of
 * the size). The folder belongs to one import step; it is removed when the step ends.
 * @module
 */

import { join } from "node:path";
import type { ColumnSpec } from "../streams/columns.ts";
import type { Row } from "../streams/stream.ts";

/** Months of rows spilled to a folder. */
export class MonthSpill {
  readonly dir: string;
  #columns: readonly ColumnSpec[];
  #counts = new Map<string, number>();

  private constructor(dir: string, columns: readonly ColumnSpec[]) {
    this.dir = dir;
    this.#columns = columns;
  }

  /** A new, empty spill in `dir` (whatever a killed step left there is removed first). */
  static async create(dir: string, columns: readonly ColumnSpec[]): Promise<MonthSpill> {
    await Deno.remove(dir, { recursive: true }).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
    await Deno.mkdir(dir, { recursive: true });
    return new MonthSpill(dir, columns);
  }

  /** The months held, oldest first, with their row counts. */
  months(): [month: string, rows: number][] {
    return [...this.#counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** Appends rows, grouped by `monthOf(row)`. */
  async append(rows: readonly Row[], monthOf: (row: Row) => string): Promise<void> {
    const groups = new Map<string, string[]>();
    const names = this.#columns.map((c) => c.name);
    for (const row of rows) {
      const month = monthOf(row);
      let lines = groups.get(month);
      if (!lines) groups.set(month, lines = []);
      lines.push(JSON.stringify(names.map((n) => row[n] ?? null)));
    }
    for (const [month, lines] of groups) {
      await Deno.writeTextFile(this.#file(month), lines.join("\n") + "\n", { append: true });
      this.#counts.set(month, (this.#counts.get(month) ?? 0) + lines.length);
    }
  }

  /** The rows of one month, in the order they were appended. */
  async read(month: string): Promise<Row[]> {
    const text = await Deno.readTextFile(this.#file(month));
    const names = this.#columns.map((c) => c.name);
    const rows: Row[] = [];
    for (const line of text.split("\n")) {
      if (line === "") continue;
      const values: unknown = JSON.parse(line);
      if (!Array.isArray(values) || values.length !== names.length) {
        throw new Error(`${this.dir}: a spilled row is not ${names.length} values`);
      }
      const row: Row = {};
      for (let i = 0; i < names.length; i++) row[names[i]!] = values[i];
      rows.push(row);
    }
    return rows;
  }

  /** Removes the folder. */
  async remove(): Promise<void> {
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  #file(month: string): string {
    if (!/^\d{4}-\d{2}$/.test(month)) throw new RangeError(`month "${month}" is not YYYY-MM`);
    return join(this.dir, `${month}.jsonl`);
  }
}
