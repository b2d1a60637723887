/**
 * `deno task bench`: the performance scenarios of issue 7, each run several times after a
 * warm-up, compared with a reference measured in the same run (so ratios hold on a noisy
 * machine), printed as a table and written to `<data dir>/bench/results.json`.
 *
 * Data is generated on first use (seeded, `bench/generate.ts`) under `<data dir>/bench/`
 * (`.data/bench/` by default; never committed): Kaggle-schema catalogs of 114k and 1.2M rows
 * and a top-50 list for each. Every measurement runs in a child process (`bench/_child.ts`) so
 * it starts cold in memory and reports its own peak RSS.
 *
 * Scenarios: 1 enrichment, catalog seen for the first time (vs DuckDB read_csv + join);
 * 2 enrichment, catalog unchanged (index); 3 peak RSS during 1; 4 the pure-JS reader's
 * throughput and RSS; 5 start-up of `fetch --help` / `enrich --help` (vs a bare `deno run`) and
 * the heavy SDKs they must not load; 6 `deno task pipeline` on the sample data; 7 Parquet write
 * of 1M rows; 8 the poll cycle; 9 `deno task import` of 1M streams of a generated privacy export
 * (`bench/generate_history.ts`, ~12 MB files) to loaded rows, vs DuckDB's `read_json` of the same
 * files to Parquet (runs at most twice: a run takes about a minute); 10 `deno task report` on a
 * generated warehouse of a year of daily snapshots and 100k plays (`bench/generate_report.ts`);
 * 11 fetch → load of one user's sample top tracks, a cold process a run and a process that stays
 * up (`serve`), vs dlt doing the same job (`bench/dlt_reference.py`, its own venv).
 * @example deno task bench --runs 5 --only 1,2,3
 * @module
 */

import {
  type GeneratedHistory,
  generateHistory,
  HISTORY_GENERATOR_VERSION,
} from "./generate_history.ts";
import { parseArgs } from "node:util";
import { join, resolve } from "node:path";
import { loadConfig, PROJECT_ROOT } from "../lib/config.ts";
import { type Manifest, openRun } from "../lib/run.ts";
import { ensureVenv, LOCKS, venvExecutable } from "../lib/dbt/venv.ts";
import { Logger } from "../lib/log.ts";
import { generateCatalog, GENERATOR_VERSION } from "./generate.ts";
import { generateReportWarehouse, REPORT_GENERATOR_VERSION } from "./generate_report.ts";

const ROOT = PROJECT_ROOT;
const CHILD = join(ROOT, "bench", "_child.ts");
const EMPTY_SCRIPT = join(ROOT, "bench", "_empty.ts");

/** One measured value per run. */
interface Sample {
  [key: string]: unknown;
  ms: number;
  hwm_kb: number;
}

/** A row of the results table. */
interface Row {
  id: string;
  name: string;
  unit: string;
  runs: number;
  median: number | null;
  min: number | null;
  max: number | null;
  reference?: { name: string; median: number };
  ratio?: number;
  target: string;
  met: boolean | null;
  note?: string;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function stats(values: number[]) {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

async function child(action: string, args: Record<string, unknown>): Promise<Sample> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", CHILD, action, JSON.stringify(args)],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) {
    throw new Error(`${action} failed: ${new TextDecoder().decode(out.stderr).slice(-2000)}`);
  }
  return JSON.parse(text.split("\n").at(-1)!) as Sample;
}

/** Wall time of a command, in ms. */
/** The manifest of a data folder's latest run, in the order the toolkit itself uses. */
async function latestManifest(dataDir: string): Promise<Manifest> {
  return (await openRun(loadConfig({ env: { PIPELINE_DATA_DIR: dataDir }, envFile: false })))
    .manifest;
}

/** dbt's phases in a transform step's summary (s), as `lib/dbt/runner.ts` measures them. */
type DbtPhases = { startup: number; parse: number; execute: number; exit: number };

/**
 * A run's step durations (ms): every step but transform and report, transform, report; and
 * dbt's phases when transform ran.
 */
function stepDurations(
  manifest: Manifest,
): { steps: number; transform: number; report: number; dbt?: DbtPhases } {
  let steps = 0;
  let transform = 0;
  let report = 0;
  let dbt: DbtPhases | undefined;
  for (const [name, step] of Object.entries(manifest.steps)) {
    if (name === "transform") {
      transform = step.duration_ms ?? 0;
      dbt = step.summary?.phases_s as DbtPhases | undefined;
    } else if (name === "report") report = step.duration_ms ?? 0;
    else steps += step.duration_ms ?? 0;
  }
  return { steps, transform, report, ...(dbt ? { dbt } : {}) };
}

async function timed(args: string[], env: Record<string, string> = {}): Promise<number> {
  const started = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env,
    stdout: "null",
    stderr: "piped",
  }).output();
  const ms = performance.now() - started;
  if (!out.success) {
    throw new Error(`deno ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).slice(-1500)}`);
  }
  return ms;
}

/** Wall time of any command, in ms. */
async function timedCommand(
  command: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<number> {
  const started = performance.now();
  const out = await new Deno.Command(command, {
    args,
    cwd: ROOT,
    env,
    stdout: "null",
    stderr: "piped",
  })
    .output();
  const ms = performance.now() - started;
  if (!out.success) {
    throw new Error(
      `${command} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).slice(-1500)}`,
    );
  }
  return ms;
}

/**
 * The Python of the bench's dlt venv (`<bench dir>/dlt-venv`, from `bench/dlt_requirements.txt`,
 * installed with the uv of the project's venv), or `undefined` when it cannot be made.
 */
async function dltPython(dir: string, log: (s: string) => void): Promise<string | undefined> {
  const venv = join(dir, "dlt-venv");
  const python = join(venv, "bin", "python");
  const requirements = join(ROOT, "bench", "dlt_requirements.txt");
  const marker = join(venv, ".requirements");
  const wanted = await Deno.readTextFile(requirements);
  try {
    if ((await Deno.readTextFile(marker)) === wanted) return python;
  } catch { /* make it */ }
  try {
    const config = loadConfig({ env: {}, envFile: false });
    const project = await ensureVenv(config.dbt, {
      log: new Logger({ format: "pretty", level: "warn" }),
      locks: [join(ROOT, LOCKS.dbt.lock)],
    });
    const uv = venvExecutable(project, "uv");
    log(`  making the dlt venv ${venv} (bench/dlt_requirements.txt) ...`);
    await timedCommand(uv, [
      "venv",
      "--quiet",
      "--allow-existing",
      "--python",
      config.dbt.python,
      venv,
    ]);
    await timedCommand(uv, ["pip", "install", "--quiet", "--python", python, "-r", requirements]);
    await Deno.writeTextFile(marker, wanted);
    return python;
  } catch (error) {
    log(`  no dlt reference: ${(error as Error).message.split("\n")[0]}`);
    return undefined;
  }
}

/**
 * `runs` pipeline runs in one `serve` process (what `serve --cron` runs its schedules in): each
 * `POST /run-top-tracks?wait=true` timed from request to answer, after one run to warm it up.
 */
async function warmRuns(
  serveArgs: string[],
  env: (work: string) => Record<string, string>,
  runs: number,
  date: () => string,
): Promise<number[]> {
  const work = await Deno.makeTempDir({ prefix: "bench_serve_" });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const server = new Deno.Command(Deno.execPath(), {
    args: serveArgs,
    cwd: ROOT,
    env: { ...env(work), PIPELINE_HOST: "127.0.0.1", PIPELINE_PORT: String(port) },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const base = `http://127.0.0.1:${port}`;
  const once = async () => {
    const started = performance.now();
    const response = await fetch(`${base}/run-top-tracks?wait=true`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ to: "load", date: date(), user: "sample" }),
    });
    const text = await response.text();
    if (response.status !== 200) throw new Error(`serve: ${response.status} ${text.slice(0, 500)}`);
    return performance.now() - started;
  };
  try {
    for (let i = 0;; i++) {
      // not up yet: the connection is refused
      if ((await fetch(`${base}/healthz`).then((r) => r.text(), () => null)) !== null) break;
      if (i > 200) throw new Error("serve did not start within 20 s");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await once();
    const samples: number[] = [];
    for (let i = 0; i < runs; i++) samples.push(await once());
    return samples;
  } finally {
    server.kill("SIGTERM");
    await server.status;
    await Deno.remove(work, { recursive: true });
  }
}

function machine() {
  const cpu = Deno.readTextFileSync("/proc/cpuinfo").match(/model name\s*:\s*(.*)/)?.[1];
  const mem = Number(Deno.readTextFileSync("/proc/meminfo").match(/MemTotal:\s+(\d+)/)?.[1]);
  return {
    nproc: navigator.hardwareConcurrency,
    cpu,
    ram_gb: Math.round(mem / 1024 / 1024 * 10) / 10,
    os: `${Deno.build.os} ${Deno.osRelease()}`,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    loadavg: Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" "),
  };
}

/** Generates the data unless it is there already (same generator version and sizes). */
async function ensureData(dir: string, log: (s: string) => void) {
  const manifestPath = join(dir, "data.json");
  const sizes = { "114k": 114_000, "1200k": 1_200_000 } as const;
  try {
    const manifest = JSON.parse(await Deno.readTextFile(manifestPath));
    if (manifest.version === GENERATOR_VERSION) {
      for (const label of Object.keys(sizes)) await Deno.stat(join(dir, `catalog_${label}.csv`));
      return manifest;
    }
  } catch { /* generate */ }
  const catalogs: Record<string, unknown> = {};
  for (const [label, rows] of Object.entries(sizes)) {
    log(`Generating ${label} catalog (${rows} rows, seeded) in ${dir} ...`);
    catalogs[label] = await generateCatalog(dir, label, { rows });
  }
  const manifest = { version: GENERATOR_VERSION, catalogs };
  await Deno.writeTextFile(manifestPath, JSON.stringify(manifest, null, 2) + "\n");
  // A catalog modified less than 2 s before it is indexed gets a "racy" index, checked by
  // content on the next lookup (see catalog_index.ts): let fresh data age past that first.
  await new Promise((resolve) => setTimeout(resolve, 2500));
  return manifest;
}

/** Task arguments after `deno run` for a deno.json task (its permissions and script). */
async function taskArgs(task: string): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  const command = String(config.tasks[task]);
  const words = command.split(/\s+/);
  if (words[0] !== "deno" || words[1] !== "run") throw new Error(`task ${task}: ${command}`);
  return words.slice(1);
}

/** Heavy packages whose modules a command loaded (strace: JS/native files opened), or null. */
async function heavyModulesLoaded(args: string[]): Promise<string[] | null> {
  const trace = await Deno.makeTempFile({ prefix: "bench_strace_" });
  try {
    const out = await new Deno.Command("strace", {
      args: ["-f", "-qq", "-e", "trace=openat", "-o", trace, Deno.execPath(), ...args],
      cwd: ROOT,
      stdout: "null",
      stderr: "null",
    }).output();
    if (!out.success) return null;
    const text = await Deno.readTextFile(trace);
    const loaded = new Set<string>();
    const re = /node_modules\/\.deno\/([^/]+)\/node_modules\/[^"]+\.(?:m?js|cjs|node)"[^=]*= \d+/g;
    for (const m of text.matchAll(re)) {
      const pkg = m[1]!;
      if (/^(@aws-sdk|@smithy|snowflake-sdk|@duckdb)/.test(pkg)) loaded.add(pkg);
    }
    return [...loaded].sort();
  } catch {
    return null; // no strace here
  } finally {
    await Deno.remove(trace).catch(() => {});
  }
}

function fmt(value: number | null | undefined, unit: string): string {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  if (unit === "ms") return value < 100 ? value.toFixed(1) : value.toFixed(0);
  if (unit === "MB") return value.toFixed(0);
  if (unit === "MB/s") return value.toFixed(0);
  if (unit === "rows/s") return `${(value / 1000).toFixed(0)}k`;
  return String(Math.round(value * 100) / 100);
}

function printTable(rows: Row[]): void {
  const header = [
    "#",
    "scenario",
    "unit",
    "median",
    "min",
    "max",
    "reference (median)",
    "ratio",
    "target",
    "met",
  ];
  const lines = rows.map((r) => [
    r.id,
    r.name,
    r.unit,
    fmt(r.median, r.unit),
    fmt(r.min, r.unit),
    fmt(r.max, r.unit),
    r.reference ? `${r.reference.name}: ${fmt(r.reference.median, r.unit)}` : "—",
    r.ratio === undefined ? "—" : `${r.ratio.toFixed(2)}×`,
    r.target,
    r.met === null ? "n/a" : r.met ? "yes" : "NO",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const line = (cells: string[]) =>
    "| " + cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ") + " |";
  console.log(line(header));
  console.log("|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|");
  for (const l of lines) console.log(line(l));
  for (const r of rows) if (r.note) console.log(`  ${r.id}: ${r.note}`);
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      runs: { type: "string", default: "5" },
      only: { type: "string" },
      "data-dir": { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(
      "Usage: deno task bench [--runs N] [--only 1,2,...] [--data-dir DIR]\n" +
        "Runs the issue-7 performance scenarios; writes <data dir>/bench/results.json.",
    );
    return 0;
  }
  const runs = Math.max(1, Number(values.runs));
  const only = values.only ? new Set(values.only.split(",").map((s) => s.trim())) : null;
  const want = (id: string) => only === null || only.has(id);
  const dataDir = resolve(
    values["data-dir"] ?? Deno.env.get("PIPELINE_DATA_DIR") ?? join(ROOT, ".data"),
  );
  const dir = join(dataDir, "bench");
  const log = (s: string) => console.error(s);
  const started = machine();
  log(`Machine: ${started.nproc} × ${started.cpu}, ${started.ram_gb} GB, load ${started.loadavg}`);
  // the catalogs (~200 MB) only for the scenarios that read them
  const data = ["1", "2", "3", "4"].some(want) ? await ensureData(dir, log) : null;
  const csv = (label: string) => join(dir, `catalog_${label}.csv`);
  const top = (label: string) => join(dir, `top_tracks_${label}.json`);
  const results: Row[] = [];
  const raw: Record<string, unknown> = {};

  /** Runs `subject` (and `reference`) after one warm-up each, alternating, `runs` times. */
  async function measure(
    label: string,
    subject: () => Promise<Sample>,
    reference?: () => Promise<Sample>,
  ): Promise<{ subject: Sample[]; reference: Sample[] }> {
    log(`  ${label}: warm-up`);
    await subject();
    if (reference) await reference();
    const s: Sample[] = [];
    const r: Sample[] = [];
    for (let i = 0; i < runs; i++) {
      s.push(await subject());
      if (reference) r.push(await reference());
    }
    log(`  ${label}: median ${median(s.map((x) => x.ms)).toFixed(1)} ms`);
    raw[label] = { subject: s, reference: r };
    return { subject: s, reference: r };
  }

  // 1-3: enrichment of the 1.2M-row catalog, first time (fresh cache) vs DuckDB.
  if (want("1") || want("3")) {
    log("Scenarios 1 and 3: enrichment, catalog seen for the first time");
    const { subject, reference } = await measure(
      "enrich-first",
      () => child("enrich", { csv: csv("1200k"), top: top("1200k"), fresh: true }),
      () => child("duckdb", { csv: csv("1200k"), top: top("1200k") }),
    );
    const s = stats(subject.map((x) => x.ms));
    const ref = median(reference.map((x) => x.ms));
    const first = subject[0]!;
    if (want("1")) {
      results.push({
        id: "1",
        name: "enrich 50 tracks, 1.2M-row CSV, first time (builds the index)",
        unit: "ms",
        runs,
        ...s,
        reference: { name: "DuckDB read_csv+join", median: ref },
        ratio: s.median / ref,
        target: "≤ 1.5× DuckDB",
        met: s.median <= 1.5 * ref,
        note: `matched ${first.matched} (${first.by_id} by id, ${first.by_name} by name) of 50; ` +
          `cache ${first.cache}; DuckDB load+connect ${
            median(reference.map((x) => Number(x.load_ms))).toFixed(0)
          } ms (not counted), its join gave ${reference[0]!.rows} rows for ${
            reference[0]!.ids
          } distinct ids ` +
          `(a repeated id is one row per copy)`,
      });
    }
    if (want("3")) {
      const rss = stats(subject.map((x) => x.hwm_kb / 1024));
      const noop = await child("noop", {});
      results.push({
        id: "3",
        name: "peak RSS during 1",
        unit: "MB",
        runs,
        ...rss,
        reference: { name: "bare Deno process", median: noop.hwm_kb / 1024 },
        target: "≤ 250 MB",
        met: rss.median <= 250,
        note: `DuckDB process during its read_csv+join: ${
          (median(reference.map((x) => x.hwm_kb)) / 1024).toFixed(0)
        } MB`,
      });
    }
  }

  // 2: enrichment with the catalog unchanged (index built once beforehand).
  if (want("2")) {
    log("Scenario 2: enrichment, catalog unchanged since the last run");
    const cache = join(dir, "cache");
    await Deno.remove(cache, { recursive: true }).catch(() => {});
    const built = await child("enrich", { csv: csv("1200k"), top: top("1200k"), cache });
    const { subject } = await measure(
      "enrich-unchanged",
      () => child("enrich", { csv: csv("1200k"), top: top("1200k"), cache }),
    );
    const s = stats(subject.map((x) => x.ms));
    const states = [...new Set(subject.map((x) => x.cache))].join(", ");
    const same = subject.every((x) => x.matched === built.matched && x.by_name === built.by_name);
    results.push({
      id: "2",
      name: "enrich 50 tracks, 1.2M-row CSV, unchanged (index)",
      unit: "ms",
      runs,
      ...s,
      reference: { name: "first time", median: built.ms },
      ratio: s.median / built.ms,
      target: "≤ 50 ms",
      met: s.median <= 50,
      note: `cache: ${states}; same matches as the first time: ${same ? "yes" : "NO"} ` +
        `(${built.matched}: ${built.by_id} by id, ${built.by_name} by name)`,
    });
  }

  // 4: the pure-JS reader (no cache, no DuckDB).
  if (want("4")) {
    log("Scenario 4: pure-JS catalog reader");
    const one = await measure(
      "scan-1200k-1-segment",
      () => child("scan", { csv: csv("1200k"), top: top("1200k"), segments: 1 }),
    );
    const two = await measure(
      "scan-1200k",
      () => child("scan", { csv: csv("1200k"), top: top("1200k") }),
    );
    const small = await measure(
      "scan-114k",
      () => child("scan", { csv: csv("114k"), top: top("114k") }),
      () => child("scan", { csv: csv("114k"), top: top("114k"), reader: "csv-parse" }),
    );
    const mbps = (xs: Sample[]) => xs.map((x) => Number(x.mb_per_s));
    const s1 = stats(mbps(one.subject));
    const s2 = stats(mbps(two.subject));
    const s3 = stats(mbps(small.subject));
    const csvParse = median(mbps(small.reference));
    results.push({
      id: "4a",
      name: "pure-JS reader, 1.2M rows, one thread (as without workers)",
      unit: "MB/s",
      runs,
      ...s1,
      target: "≥ 100 MB/s",
      met: s1.median >= 100,
    });
    results.push({
      id: "4b",
      name: "pure-JS reader, 1.2M rows, two segments (worker)",
      unit: "MB/s",
      runs,
      ...s2,
      target: "≥ 100 MB/s",
      met: s2.median >= 100,
      note: `segments used: ${two.subject[0]!.segments}`,
    });
    results.push({
      id: "4c",
      name: "pure-JS reader, 114k rows",
      unit: "MB/s",
      runs,
      ...s3,
      reference: { name: "csv-parse reader", median: csvParse },
      ratio: s3.median / csvParse,
      target: "≥ 100 MB/s",
      met: s3.median >= 100,
    });
    const rss = stats([...one.subject, ...two.subject].map((x) => x.hwm_kb / 1024));
    results.push({
      id: "4d",
      name: "pure-JS reader, 1.2M rows, peak RSS (4a and 4b)",
      unit: "MB",
      runs: runs * 2,
      ...rss,
      target: "≤ 200 MB",
      met: rss.max <= 200,
    });
  }

  // 5: start-up of --help.
  if (want("5")) {
    log("Scenario 5: start-up");
    const bare = ["run", EMPTY_SCRIPT];
    for (const task of ["fetch", "enrich"]) {
      const command = [...await taskArgs(task), "--help"];
      const { subject, reference } = await measure(
        `${task}-help`,
        async () => ({ ms: await timed(command), hwm_kb: 0 }),
        async () => ({ ms: await timed(bare), hwm_kb: 0 }),
      );
      const s = stats(subject.map((x) => x.ms));
      const ref = median(reference.map((x) => x.ms));
      const heavy = await heavyModulesLoaded(command);
      results.push({
        id: task === "fetch" ? "5a" : "5b",
        name: `start-up: ${task} --help`,
        unit: "ms",
        runs,
        ...s,
        reference: { name: "bare deno run", median: ref },
        ratio: s.median / ref,
        target: "≤ 3× bare; no AWS/Snowflake/DuckDB",
        met: s.median <= 3 * ref && heavy !== null && heavy.length === 0,
        note: heavy === null
          ? "heavy modules not checked (no strace)"
          : `heavy packages loaded: ${heavy.length ? heavy.join(", ") : "none"} (strace)`,
      });
    }
  }

  // 6: the pipeline on the sample data, local profile.
  if (want("6")) {
    log("Scenario 6: deno task pipeline on the sample data");
    const pipelineDir = await Deno.makeTempDir({ prefix: "bench_pipeline_" });
    const command = [...await taskArgs("pipeline")];
    let day = 0;
    const samples: (ReturnType<typeof stepDurations> & { wall: number })[] = [];
    const once = async () => {
      const date = new Date(Date.UTC(2026, 0, 1 + day++)).toISOString().slice(0, 10);
      const wall = await timed([...command, "--date", date], {
        PIPELINE_DATA_DIR: pipelineDir,
        PIPELINE_PROFILE: "local",
        SPOTIFY_SOURCE: "sample",
      });
      return { ...stepDurations(await latestManifest(pipelineDir)), wall };
    };
    try {
      log("  pipeline: warm-up");
      await once();
      for (let i = 0; i < Math.min(runs, 3); i++) samples.push(await once());
    } finally {
      await Deno.remove(pipelineDir, { recursive: true });
    }
    raw.pipeline = samples;
    const s = stats(samples.map((x) => x.steps));
    results.push({
      id: "6a",
      name: "pipeline, sample data: every step but transform and report",
      unit: "ms",
      runs: samples.length,
      ...s,
      target: "≤ 1000 ms",
      met: s.median <= 1000,
      note: `process wall time ${
        fmt(median(samples.map((x) => x.wall)), "ms")
      } ms (start-up included)`,
    });
    const t = stats(samples.map((x) => x.transform));
    results.push({
      id: "6b",
      name: "pipeline, sample data: transform (dbt)",
      unit: "ms",
      runs: samples.length,
      ...t,
      target: "reported",
      met: null,
      note: (() => {
        const phases = samples.flatMap((x) => x.dbt ? [x.dbt] : []);
        if (!phases.length) return undefined;
        const m = (k: keyof DbtPhases) => median(phases.map((p) => p[k])).toFixed(2);
        return `dbt's phases (median s): Python start-up and imports ${m("startup")}, parse ${
          m("parse")
        } (partial), run the nodes ${m("execute")}, artifacts and exit ${m("exit")}`;
      })(),
    });
    const r = stats(samples.map((x) => x.report));
    results.push({
      id: "6c",
      name: "pipeline, sample data: report",
      unit: "ms",
      runs: samples.length,
      ...r,
      target: "reported (scenario 10 has the target)",
      met: null,
    });
  }

  // 8: the poll cycle (deno task poll) on the sample data, beside scenario 6.
  if (want("8")) {
    log("Scenario 8: deno task poll on the sample data");
    const command = [...await taskArgs("poll")];
    const env = (dir: string) => ({
      PIPELINE_DATA_DIR: dir,
      PIPELINE_PROFILE: "local",
      SPOTIFY_SOURCE: "sample",
    });
    const stepsOf = async (dir: string) => {
      const manifest = await latestManifest(dir);
      if (manifest.status !== "succeeded") {
        throw new Error(`poll run ${manifest.run_id}: ${manifest.status}`);
      }
      return stepDurations(manifest).steps;
    };
    const fresh: { steps: number; wall: number }[] = [];
    const idle: { steps: number; wall: number }[] = [];
    const pollDir = await Deno.makeTempDir({ prefix: "bench_poll_" });
    try {
      log("  poll: warm-up");
      await timed(command, env(pollDir));
      for (let i = 0; i < runs; i++) {
        // new plays: a fresh data folder, so the sample's 30 plays are all after the cursor
        const dir = await Deno.makeTempDir({ prefix: "bench_poll_new_" });
        try {
          const wall = await timed(command, env(dir));
          fresh.push({ steps: await stepsOf(dir), wall });
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
        // nothing new: the same folder again (every play at or before the cursor)
        const wall = await timed(command, env(pollDir));
        idle.push({ steps: await stepsOf(pollDir), wall });
      }
    } finally {
      await Deno.remove(pollDir, { recursive: true });
    }
    raw.poll = { fresh, idle };
    for (
      const [id, name, samples] of [
        [
          "8a",
          "poll, sample data: 47 new plays of two users (fetch → load, fresh data folder)",
          fresh,
        ],
        ["8b", "poll, sample data: nothing new", idle],
      ] as const
    ) {
      const s = stats(samples.map((x) => x.steps));
      results.push({
        id,
        name,
        unit: "ms",
        runs: samples.length,
        ...s,
        target: "≤ 1000 ms",
        met: s.median <= 1000,
        note: `process wall time ${
          fmt(median(samples.map((x) => x.wall)), "ms")
        } ms (start-up included); the daily pipeline's steps are scenario 6a`,
      });
    }
  }

  // 7: Parquet write of a 1M-row backfill.
  if (want("7")) {
    log("Scenario 7: Parquet write");
    const big = await measure("parquet-1m", () => child("parquet", { rows: 1_000_000 }));
    const small = await child("parquet", { rows: 100_000 });
    const rate = stats(big.subject.map((x) => Number(x.rows_per_s)));
    results.push({
      id: "7a",
      name: "Parquet write, 1M rows (backfill)",
      unit: "rows/s",
      runs,
      ...rate,
      target: "reported",
      met: null,
    });
    const rss = stats(big.subject.map((x) => x.hwm_kb / 1024));
    const over = (x: Sample) => (x.hwm_kb - Number(x.rss_before_kb)) / 1024;
    results.push({
      id: "7b",
      name: "Parquet write, 1M rows: peak RSS",
      unit: "MB",
      runs,
      ...rss,
      target: "bounded (reported)",
      met: null,
      note: `the 1M input rows alone (JS objects): ${
        (median(big.subject.map((x) => Number(x.rss_before_kb))) / 1024).toFixed(0)
      } MB; writing adds ${median(big.subject.map(over)).toFixed(0)} MB ` +
        `(${over(small).toFixed(0)} MB for 100k rows)`,
    });
  }

  // 9: importing 1M streams of a privacy export (extended format, ~12 MB files) to loaded rows,
  // against DuckDB's read_json of the same files to Parquet, side by side in one run.
  if (want("9")) {
    log("Scenario 9: deno task import, 1M streams, vs DuckDB read_json → Parquet");
    const historyDir = join(dir, `history_1m_v${HISTORY_GENERATOR_VERSION}`);
    let generated: GeneratedHistory;
    try {
      generated = JSON.parse(await Deno.readTextFile(join(historyDir, "history.json")));
    } catch {
      log(`  generating 1M streams (seeded) in ${historyDir} ...`);
      await Deno.remove(historyDir, { recursive: true }).catch(() => {});
      generated = await generateHistory(join(historyDir, "export"), { streams: 1_000_000 });
      await Deno.writeTextFile(join(historyDir, "history.json"), JSON.stringify(generated));
    }
    const subject: Sample[] = [];
    const reference: Sample[] = [];
    for (let i = 0; i < Math.min(runs, 2); i++) {
      subject.push(await child("import", { dir: generated.dir }));
      reference.push(await child("duckdb_json", { dir: generated.dir }));
      log(
        `  import ${subject.at(-1)!.ms.toFixed(0)} ms, DuckDB ${
          reference.at(-1)!.ms.toFixed(0)
        } ms`,
      );
    }
    raw.import = { subject, reference, generated };
    const s = stats(subject.map((x) => x.ms));
    const ref = median(reference.map((x) => x.ms));
    const rows = Number(subject[0]!.rows);
    const steps = subject[0]!.steps as Record<string, number>;
    results.push({
      id: "9a",
      name: `import 1M streams (${generated.files} files, ${
        (generated.bytes / 1e6).toFixed(0)
      } MB) to loaded rows`,
      unit: "ms",
      runs: subject.length,
      ...s,
      reference: { name: "DuckDB read_json → Parquet", median: ref },
      ratio: s.median / ref,
      target: "≤ 2× DuckDB",
      met: s.median <= 2 * ref,
      note: `${Math.round(rows / (s.median / 1000))} streams/s loaded (${rows} after ${
        Number(subject[0]!.read) - rows
      } duplicates); steps: import ${steps.import} ms, upload ${steps.upload} ms, load ${steps.load} ms`,
    });
    const rss = stats(subject.map((x) => x.hwm_kb / 1024));
    results.push({
      id: "9b",
      name: "import 1M streams: peak RSS",
      unit: "MB",
      runs: subject.length,
      ...rss,
      reference: {
        name: "DuckDB read_json → Parquet",
        median: median(reference.map((x) => x.hwm_kb / 1024)),
      },
      target: "≤ 300 MB",
      met: rss.median <= 300,
    });
  }

  // 10: the report for a year of daily snapshots and 100k plays (a generated warehouse).
  if (want("10")) {
    log("Scenario 10: deno task report, a year of snapshots and 100k plays");
    const warehouse = join(dir, `report_v${REPORT_GENERATOR_VERSION}`, "warehouse.duckdb");
    try {
      await Deno.stat(warehouse);
    } catch {
      log(`  generating the models in ${warehouse} ...`);
      await Deno.mkdir(join(warehouse, ".."), { recursive: true });
      await generateReportWarehouse(`${warehouse}.tmp`);
      await Deno.rename(`${warehouse}.tmp`, warehouse);
    }
    await child("report", { warehouse }); // warm-up
    const samples: Sample[] = [];
    for (let i = 0; i < runs; i++) samples.push(await child("report", { warehouse }));
    raw.report = samples;
    const s = stats(samples.map((x) => x.ms));
    results.push({
      id: "10a",
      name: "report: 365 days × 3 ranges × 50 snapshots, 100k plays",
      unit: "ms",
      runs: samples.length,
      ...s,
      target: "≤ 2000 ms (start-up excluded)",
      met: s.median <= 2000,
      note: `${samples[0]!.charts} charts, ${
        (Number(samples[0]!.bytes) / 1024).toFixed(0)
      } KiB page; peak RSS ${(median(samples.map((x) => x.hwm_kb)) / 1024).toFixed(0)} MB`,
    });
  }

  // 11: fetch → load on the sample (one user's top tracks: 21 rows, 1 file), as the issue
  // measured it against dlt: a cold process a run (the daily cron of a server, the compiled
  // binary), dlt doing the same job in the same run; then the same runs in a process that stays
  // up (`serve --cron`: the schedules run in-process), triggered over HTTP.
  if (want("11")) {
    log("Scenario 11: fetch → load, one user's sample top tracks, vs dlt");
    const env = (work: string) => ({
      PIPELINE_DATA_DIR: work,
      PIPELINE_PROFILE: "local",
      SPOTIFY_SOURCE: "sample",
      PIPELINE_STREAMS: "top_tracks",
    });
    const pipeline = [...await taskArgs("pipeline"), "--to", "load", "--user", "sample"];
    const dlt = await dltPython(dir, log);
    const ours = await Deno.makeTempDir({ prefix: "bench_to_load_" });
    const theirs = await Deno.makeTempDir({ prefix: "bench_dlt_" });
    const cold: number[] = [];
    const reference: number[] = [];
    let day = 0;
    const date = () => new Date(Date.UTC(2026, 0, 1 + day++)).toISOString().slice(0, 10);
    const dltOnce = (d: string) =>
      timedCommand(dlt!, [
        join(ROOT, "bench", "dlt_reference.py"),
        join(ROOT, "data", "sample_top_tracks_short_term.json"),
        join(ROOT, "data", "audio_features_sample.csv"),
        theirs,
        d,
      ], { RUNTIME__DLTHUB_TELEMETRY: "false" });
    try {
      log("  cold: warm-up");
      await timed([...pipeline, "--date", date()], env(ours));
      if (dlt) await dltOnce(date());
      for (let i = 0; i < runs; i++) {
        const d = date();
        cold.push(await timed([...pipeline, "--date", d], env(ours)));
        if (dlt) reference.push(await dltOnce(d));
      }
    } finally {
      await Deno.remove(ours, { recursive: true });
      await Deno.remove(theirs, { recursive: true });
    }
    const ref = reference.length ? median(reference) : undefined;
    /**
     * A row of 11 against dlt's median, measured in the same run: ≥ 5× faster (the issue's target;
     * its "≤ 500 ms" was 5× the 2.53 s dlt took then, and a ratio holds on a noisy machine).
     */
    const vsDlt = (id: string, name: string, samples: number[], note: string): Row => {
      const s = stats(samples);
      return {
        id,
        name,
        unit: "ms",
        runs: samples.length,
        ...s,
        ...(ref
          ? { reference: { name: "dlt 1.31 → DuckDB", median: ref }, ratio: s.median / ref }
          : {}),
        target: "≥ 5× faster than dlt",
        met: ref === undefined ? null : ref / s.median >= 5,
        note,
      };
    };
    results.push(vsDlt(
      "11a",
      "fetch → load, sample top tracks of one user (21 rows, 1 file): cold process",
      cold,
      `process wall time, start-up included${
        ref ? `; dlt ${(ref / median(cold)).toFixed(1)}× slower` : "; dlt not measured (no venv)"
      }`,
    ));
    results.push(vsDlt(
      "11b",
      "the same runs in a process that stays up (serve --cron, POST ?wait=true)",
      await warmRuns(await taskArgs("serve"), env, runs, date),
      "request to answer, the process's start-up and first run excluded",
    ));
  }

  const finished = machine();
  console.log();
  printTable(results);
  console.log(
    `\nMachine: ${started.nproc} × ${started.cpu}, ${started.ram_gb} GB RAM, ` +
      `${started.os}, Deno ${started.deno}; load average ${started.loadavg} → ${finished.loadavg}`,
  );
  const out = join(dir, "results.json");
  await Deno.writeTextFile(
    out,
    JSON.stringify(
      {
        at: new Date().toISOString(),
        runs,
        machine: started,
        load_after: finished.loadavg,
        data,
        results,
        raw,
      },
      null,
      2,
    ) + "\n",
  );
  console.log(`Results: ${out}`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
