/**
 * The single CLI (`scripts/cli.ts`, what `deno compile` embeds): help at both levels, version,
 * usage errors, and each documented exit code produced by the case it documents. Every command
 * runs in a child process started from a temporary folder (nothing may depend on the current
 * directory), with only the environment given.
 */

import denoJson from "../deno.json" with { type: "json" };
import { loadConfig, PROJECT_ROOT } from "../lib/config.ts";
import { ExitCode, exitCodeOf } from "../lib/errors.ts";
import { acquireRunLock } from "../lib/lock.ts";
import { listRunIds, openRun } from "../lib/run.ts";
import { listRuns } from "../lib/server/runs.ts";
import { assert, assertEquals, assertStringIncludes } from "./_spotify_test_util.ts";
import { mockEnv, startMockSpotify, writeMockTokens } from "./mock_spotify.ts";
import { denoBinary } from "./stand_ins.ts";

const ROOT = `${PROJECT_ROOT}/`;
const CLI = `${ROOT}scripts/cli.ts`;
const COMMANDS = [
  "auth",
  "fetch",
  "enrich",
  "write",
  "upload",
  "load",
  "transform",
  "pipeline",
  "serve",
];

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `deno run -A scripts/cli.ts <args>` from `cwd` with only `env` (plus PATH/HOME). */
async function cli(args: string[], env: Record<string, string>, cwd: string): Promise<Result> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-cron", "--config", `${ROOT}deno.json`, CLI, ...args],
    cwd,
    clearEnv: true,
    env: {
      HOME: Deno.env.get("HOME") ?? "/tmp",
      PATH: Deno.env.get("PATH") ?? "",
      NO_COLOR: "1",
      PIPELINE_LOG_FORMAT: "json",
      ...env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

/** A temp folder used as both the data dir and the working directory. */
async function tempDir(): Promise<{ dir: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "cli_test_" });
  return {
    dir,
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * The final error records of a JSON-lines log: the ones carrying the exit code (what a task
 * prints last); dbt's own error lines, streamed before, carry none.
 */
function errors(stderr: string): { msg: string; exit_code?: number }[] {
  return stderr.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
    .filter((r) => r.level === "error" && r.exit_code !== undefined);
}

function explain(r: Result): string {
  return `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

Deno.test("cli --help lists every command and the exit codes; --version prints deno.json's version", async () => {
  await using tmp = await tempDir();
  const help = await cli(["--help"], {}, tmp.dir);
  assertEquals(help.code, 0, explain(help));
  for (const c of COMMANDS) assert(new RegExp(`^  ${c} `, "m").test(help.stdout), c);
  assertStringIncludes(help.stdout, "5 dbt, 6 already running");
  const version = await cli(["--version"], {}, tmp.dir);
  assertEquals(version.code, 0);
  assertStringIncludes(version.stdout, `spotify-pipeline ${denoJson.version}`);
});

Deno.test("cli <command> --help shows that command's flags and settings, exit 0, for every command", async () => {
  await using tmp = await tempDir();
  for (const c of COMMANDS) {
    const r = await cli([c, "--help"], {}, tmp.dir);
    assertEquals(r.code, 0, `${c}: ${explain(r)}`);
    assertStringIncludes(r.stdout.split("\n")[0]!, ` ${c} — `);
    assertStringIncludes(r.stdout, "Exit codes:");
  }
  const viaHelp = await cli(["help", "serve"], {}, tmp.dir);
  assertEquals(viaHelp.code, 0);
  assertStringIncludes(viaHelp.stdout, "PIPELINE_TRIGGER_TOKEN");
  assertStringIncludes(viaHelp.stdout, "--cron");
});

Deno.test("exit 2 (usage): an unknown command, no command, an unknown flag", async () => {
  await using tmp = await tempDir();
  const unknown = await cli(["fetchh"], {}, tmp.dir);
  assertEquals(unknown.code, ExitCode.config, explain(unknown));
  assertStringIncludes(unknown.stderr, 'unknown command "fetchh"');
  const none = await cli([], {}, tmp.dir);
  assertEquals(none.code, ExitCode.config);
  assertStringIncludes(none.stderr, "Usage:");
  const flag = await cli(["pipeline", "--nope"], { PIPELINE_DATA_DIR: tmp.dir }, tmp.dir);
  assertEquals(flag.code, ExitCode.config, explain(flag));
  assertStringIncludes(errors(flag.stderr)[0]!.msg, "--nope");
});

Deno.test("exit 2 (config): bad settings are named, all at once", async () => {
  await using tmp = await tempDir();
  const r = await cli(["serve"], {
    PIPELINE_DATA_DIR: tmp.dir,
    PIPELINE_PORT: "80000",
    PIPELINE_SCHEDULE: "every day",
  }, tmp.dir);
  assertEquals(r.code, ExitCode.config, explain(r));
  const msg = errors(r.stderr)[0]!.msg;
  assertStringIncludes(msg, 'PIPELINE_PORT="80000"');
  assertStringIncludes(msg, 'PIPELINE_SCHEDULE="every day"');
  const prod = await cli(
    ["pipeline"],
    { PIPELINE_DATA_DIR: tmp.dir, PIPELINE_PROFILE: "prod" },
    tmp.dir,
  );
  assertEquals(prod.code, ExitCode.config, explain(prod));
  assertStringIncludes(errors(prod.stderr)[0]!.msg, "S3_BUCKET");
});

Deno.test("exit 2: serve refuses a non-loopback address without a trigger token", async () => {
  await using tmp = await tempDir();
  const r = await cli(["serve"], { PIPELINE_DATA_DIR: tmp.dir, PIPELINE_HOST: "0.0.0.0" }, tmp.dir);
  assertEquals(r.code, ExitCode.config, explain(r));
  assertStringIncludes(errors(r.stderr)[0]!.msg, "PIPELINE_TRIGGER_TOKEN");
});

Deno.test("exit 3 (source): Spotify refuses the refresh token (invalid_grant)", async () => {
  await using tmp = await tempDir();
  const mock = startMockSpotify();
  try {
    const env = mockEnv(mock, tmp.dir, { HTTP_MAX_RETRIES: "0" });
    // An expired access token forces a refresh, which the mock answers with invalid_grant.
    await writeMockTokens(mock, `${tmp.dir}/spotify_tokens.json`, {
      expiresAt: new Date(Date.now() - 60_000),
    });
    mock.state.invalidGrant = true;
    const r = await cli(["fetch"], env, tmp.dir);
    assertEquals(r.code, ExitCode.source, explain(r));
    const [error] = errors(r.stderr);
    assertStringIncludes(error!.msg, "invalid_grant");
    assertEquals(error!.exit_code, ExitCode.source);
  } finally {
    await mock.close();
  }
});

Deno.test("exit 3 (source): the Spotify API is unreachable", async () => {
  await using tmp = await tempDir();
  const mock = startMockSpotify();
  try {
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (closed.addr as Deno.NetAddr).port;
    closed.close();
    const env = mockEnv(mock, tmp.dir, {
      SPOTIFY_API_URL: `http://127.0.0.1:${port}`,
      HTTP_MAX_RETRIES: "0",
    });
    await writeMockTokens(mock, `${tmp.dir}/spotify_tokens.json`);
    const r = await cli(["pipeline"], env, tmp.dir);
    assertEquals(r.code, ExitCode.source, explain(r));
    assertStringIncludes(errors(r.stderr)[0]!.msg, `127.0.0.1:${port}`);
  } finally {
    await mock.close();
  }
});

const PYTHON = `${ROOT}.venv/bin/python`;

/** Runs Python (the project venv's, with duckdb) on a DuckDB file. */
async function duckdbPython(code: string, path: string): Promise<void> {
  const out = await new Deno.Command(PYTHON, { args: ["-c", code, path] }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
}

Deno.test("exit 0 for a whole local run; exit 4 while the DuckDB file is locked; exit 5 when a dbt test fails", async () => {
  await using tmp = await tempDir();
  const env = { PIPELINE_DATA_DIR: tmp.dir, SPOTIFY_SOURCE: "sample" };
  const ok = await cli(["pipeline"], env, tmp.dir);
  assertEquals(ok.code, ExitCode.ok, explain(ok));
  assertStringIncludes(ok.stdout, "succeeded");
  assertStringIncludes(ok.stdout, `Warehouse: ${tmp.dir}/warehouse.duckdb`);

  // Another process holds the warehouse file: the load fails with exit 4, naming the file.
  const warehouse = `${tmp.dir}/warehouse.duckdb`;
  const holder = new Deno.Command(PYTHON, {
    args: [
      "-c",
      "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('ready', flush=True); sys.stdin.read()",
      warehouse,
    ],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const reader = holder.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    assertStringIncludes(String((await reader.read()).value), "ready");
    const locked = await cli(["pipeline", "--to", "load"], env, tmp.dir);
    assertEquals(locked.code, ExitCode.storage, explain(locked));
    const [error] = errors(locked.stderr);
    assertStringIncludes(error!.msg, warehouse);
    assertEquals(error!.exit_code, 4);
  } finally {
    await holder.stdin.close();
    await reader.cancel();
    await holder.status;
  }

  // A raw row out of range (danceability 2.0): dbt's accepted-range test fails, exit 5.
  await duckdbPython(
    "import duckdb, sys; con = duckdb.connect(sys.argv[1]); con.execute('insert into raw.top_tracks select * replace (2.0 as danceability) from raw.top_tracks limit 1'); con.close()",
    warehouse,
  );
  const dbt = await cli(["transform"], env, tmp.dir);
  assertEquals(dbt.code, ExitCode.dbt, explain(dbt));
  const [dbtError] = errors(dbt.stderr);
  assertStringIncludes(dbtError!.msg, "danceability");
  assertEquals(dbtError!.exit_code, 5);
});

Deno.test("exit 4 (storage): the lake folder cannot be created", async () => {
  await using tmp = await tempDir();
  const file = `${tmp.dir}/not-a-folder`;
  await Deno.writeTextFile(file, "");
  const r = await cli(["pipeline", "--to", "upload"], {
    PIPELINE_DATA_DIR: tmp.dir,
    SPOTIFY_SOURCE: "sample",
    PIPELINE_LAKE_DIR: `${file}/lake`,
  }, tmp.dir);
  assertEquals(r.code, ExitCode.storage, explain(r));
  const [error] = errors(r.stderr);
  assertStringIncludes(error!.msg, `${file}/lake`);
  assertEquals(error!.exit_code, 4);
});

Deno.test("exit 6 (already running): a second pipeline while one holds the lock names the running id", async () => {
  await using tmp = await tempDir();
  const lock = await acquireRunLock({ dataDir: tmp.dir }, { runId: "20261126T120000Z-b0b0" });
  try {
    const env = { PIPELINE_DATA_DIR: tmp.dir, SPOTIFY_SOURCE: "sample" };
    const r = await cli(["pipeline"], env, tmp.dir);
    assertEquals(r.code, ExitCode.locked, explain(r));
    const [error] = errors(r.stderr);
    assertStringIncludes(error!.msg, "20261126T120000Z-b0b0");
    assertEquals(error!.exit_code, 6);
    const config = loadConfig({ env: { PIPELINE_DATA_DIR: tmp.dir }, envFile: false });
    assertEquals(await listRunIds(config), []); // the refused run left no folder
  } finally {
    await lock.release();
  }
  // The lock released, the same command runs (first step only, on the bundled sample).
  const ok = await cli(["pipeline", "--to", "fetch"], {
    PIPELINE_DATA_DIR: tmp.dir,
    SPOTIFY_SOURCE: "sample",
  }, tmp.dir);
  assertEquals(ok.code, ExitCode.ok, explain(ok));
  assertStringIncludes(ok.stdout, "partial");
});

Deno.test("exit 6: a single step (fetch, load) is refused while another run holds the lock", async () => {
  await using tmp = await tempDir();
  const env = { PIPELINE_DATA_DIR: tmp.dir, SPOTIFY_SOURCE: "sample" };
  const lock = await acquireRunLock({ dataDir: tmp.dir }, { runId: "20261126T120000Z-c0c0" });
  try {
    for (const command of [["fetch"], ["load"]]) {
      const r = await cli(command, env, tmp.dir);
      assertEquals(r.code, ExitCode.locked, explain(r));
      assertStringIncludes(errors(r.stderr)[0]!.msg, "20261126T120000Z-c0c0");
    }
    const config = loadConfig({ env: { PIPELINE_DATA_DIR: tmp.dir }, envFile: false });
    assertEquals(await listRunIds(config), []);
  } finally {
    await lock.release();
  }
  const ok = await cli(["fetch"], env, tmp.dir);
  assertEquals(ok.code, ExitCode.ok, explain(ok));
  // A single step that finished leaves its run "partial" (stopped on purpose), not "running",
  // which the run API would show as interrupted.
  const config = loadConfig({ env: { PIPELINE_DATA_DIR: tmp.dir }, envFile: false });
  const [id] = await listRunIds(config);
  const run = await openRun(config, { runId: id });
  assertEquals(run.manifest.status, "partial");
  assertEquals((await listRuns(config))[0]?.status, "partial");
});

Deno.test("exit 1 is kept for unexpected errors (anything not a PipelineError)", () => {
  assertEquals(exitCodeOf(new TypeError("a bug")), ExitCode.internal);
  assertEquals(ExitCode.internal, 1);
});

Deno.test("deno task compile checks the running Deno first: older than 2.7.0 (no --self-extracting) is exit 2 naming the minimum", async () => {
  const { denoAtLeast } = await import("../lib/deno_version.ts");
  const { compileArgs, MIN_COMPILE_DENO } = await import("../scripts/compile.ts");
  assertEquals(
    [denoAtLeast("2.9.6", "2.7.0"), denoAtLeast("2.7.0", "2.7.0"), denoAtLeast("2.5.0", "2.7.0")],
    [true, true, false],
  );
  assertEquals(denoAtLeast("2.10.0", "2.7.0"), true, "numeric, not string, order");
  const args = compileArgs();
  assert(args.includes("--self-extracting") && args.at(-1) === "scripts/cli.ts");
  const old = await denoBinary("2.5.0");
  const out = await new Deno.Command(old, {
    args: ["run", "--allow-run", "--allow-read", "--allow-env", `${ROOT}scripts/compile.ts`],
    env: { DENO_TLS_CA_STORE: "system", NO_COLOR: "1", PIPELINE_LOG_FORMAT: "json" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 2, stderr);
  assertStringIncludes(stderr, `needs Deno ${MIN_COMPILE_DENO} or newer; this is Deno 2.5.0`);
  assert(!stderr.includes("Download"), "stopped before deno compile started");
});
