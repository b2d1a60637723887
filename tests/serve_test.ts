/**
 * The HTTP trigger and the schedule: runs started over HTTP complete and show up in `/runs`, the
 * bearer token guards every endpoint but `/healthz`, one run at a time (409), stale locks, the
 * `Deno.cron` registration, readiness, and bad input (413, 415, 400, traversal, 404, 405).
 */

import { join } from "node:path";
import { type Config, loadConfig } from "../lib/config.ts";
import { ConfigError } from "../lib/errors.ts";
import { acquireRunLock, type LockInfo, lockPath } from "../lib/lock.ts";
import { runPipeline } from "../lib/pipeline.ts";
import { PipelineApp } from "../lib/server/app.ts";
import type { RunSummary } from "../lib/server/runs.ts";
import { type CronFn, type CronOptions, toDenoCronSchedule } from "../lib/server/cron.ts";
import { isLoopback, serve } from "../lib/server/serve.ts";
import type { PipelineFn } from "../lib/server/trigger.ts";
import { createRun, listRunIds } from "../lib/run.ts";
import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  testLog,
} from "./_spotify_test_util.ts";
import { mockEnv, startMockSpotify, writeMockTokens } from "./mock_spotify.ts";

const TOKEN = "test-trigger-token-0123456789abcdef";
const AUTH = { authorization: `Bearer ${TOKEN}` };

interface Env {
  dir: string;
  config: Config;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A temp data dir and a local-profile config on the bundled sample. */
async function setup(extra: Record<string, string> = {}): Promise<Env> {
  const dir = await Deno.makeTempDir({ prefix: "serve_test_" });
  const config = loadConfig({
    env: {
      PIPELINE_DATA_DIR: dir,
      SPOTIFY_SOURCE: "sample",
      PIPELINE_TRIGGER_TOKEN: TOKEN,
      PIPELINE_PORT: "0",
      ...extra,
    },
    envFile: false,
  });
  return {
    dir,
    config,
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** A pipeline that stops after `to` (a real run, lock and run folder included). */
function pipelineTo(to: string): PipelineFn {
  return (config, options) => runPipeline(config, { ...options, to: options.to ?? to });
}

/** Starts `serve()` on a free port; dispose stops it. */
async function startServer(
  config: Config,
  options: { cron?: boolean; cronFn?: CronFn; pipeline?: PipelineFn } = {},
): Promise<{ url: string; lines: string[] } & AsyncDisposable> {
  const { log, lines } = testLog();
  const stop = new AbortController();
  let listening!: (addr: Deno.NetAddr) => void;
  const addr = new Promise<Deno.NetAddr>((r) => (listening = r));
  const done = serve(config, { log, signal: stop.signal, onListen: listening, ...options });
  const { port } = await Promise.race([addr, done.then(() => Promise.reject("stopped"))]);
  return {
    url: `http://127.0.0.1:${port}`,
    lines,
    async [Symbol.asyncDispose]() {
      stop.abort();
      await done;
    },
  };
}

function request(path: string, init: RequestInit = {}): Request {
  return new Request(`http://127.0.0.1${path}`, init);
}

async function call(
  app: PipelineApp,
  path: string,
  init: RequestInit = {},
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await app.handler(request(path, init));
  const text = await res.text();
  assertEquals(res.headers.get("content-type"), "application/json; charset=utf-8");
  return { status: res.status, body: JSON.parse(text), headers: res.headers };
}

/** Polls `GET /runs/:id` until the run is no longer running. */
async function waitForRun(url: string, id: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 1200; i++) {
    const res = await fetch(`${url}/runs/${id}`, { headers: AUTH });
    const { run } = await res.json() as { run: Record<string, unknown> };
    if (run.status !== "running") return run;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`run ${id} still running after 120 s`);
}

Deno.test("POST /run-top-tracks answers 202 with the run id; the run completes and GET /runs/:id shows its counts", async () => {
  await using env = await setup();
  await using server = await startServer(env.config);
  const res = await fetch(`${server.url}/run-top-tracks`, { method: "POST", headers: AUTH });
  assertEquals(res.status, 202);
  const body = await res.json() as { run_id: string; status: string };
  assertEquals(body.status, "running");
  assertEquals(res.headers.get("location"), `/runs/${body.run_id}`);
  const run = await waitForRun(server.url, body.run_id);
  const steps = run.steps as Record<string, { status: string; counts?: Record<string, number> }>;
  assertEquals(run.status, "succeeded", JSON.stringify(run, null, 2));
  assertEquals(Object.keys(steps), [
    "fetch",
    "enrich",
    "write",
    "upload",
    "load",
    "transform",
    "report",
  ]);
  for (const step of Object.values(steps)) assertEquals(step.status, "succeeded");
  // the bundled sample's two users: 21 + 12 top tracks, each account's outcome per step
  assertEquals(steps.fetch?.counts?.top_tracks_rows, 21 + 12);
  const users = run.users as RunSummary["users"];
  assertEquals(Object.keys(users), ["sample", "sample_2"]);
  assertEquals(users.sample_2?.steps.load?.status, "succeeded");
  assertEquals(run.streams, ["top_tracks", "recently_played", "top_artists"]);
  assertEquals(run.possible_gap, 0);
  assertEquals(run.active, false);
  assert(typeof run.coverage === "number", `coverage: ${run.coverage}`);
  // ... and in the list of recent runs, and the lock is released.
  const list = await (await fetch(`${server.url}/runs`, { headers: AUTH })).json();
  assertEquals(list.runs.map((r: { run_id: string }) => r.run_id), [body.run_id]);
  await assertRejects(() => Deno.stat(lockPath(env.config)), Deno.errors.NotFound);
});

Deno.test("POST /run-top-tracks?wait=true answers the finished run", async () => {
  await using env = await setup();
  const { log } = testLog();
  const app = new PipelineApp({ config: env.config, log, pipeline: pipelineTo("fetch") });
  const { status, body } = await call(app, "/run-top-tracks?wait=true", {
    method: "POST",
    headers: { ...AUTH, "content-type": "application/json" },
    body: JSON.stringify({ date: "2026-11-25" }),
  });
  assertEquals(status, 200);
  const run = body.run as Record<string, unknown>;
  assertEquals(run.run_id, body.run_id);
  assertEquals(run.snapshot_date, "2026-11-25");
  assertEquals(run.status, "partial");
  const steps = run.steps as Record<string, { counts: { top_tracks_rows: number } }>;
  assertEquals(steps.fetch?.counts.top_tracks_rows, 21 + 12);
  await app.close();
});

Deno.test('POST /run-top-tracks {"user"} runs those accounts only; an unknown one is named', async () => {
  await using env = await setup();
  const { log } = testLog();
  const app = new PipelineApp({ config: env.config, log, pipeline: pipelineTo("fetch") });
  const post = (body: unknown) =>
    call(app, "/run-top-tracks?wait=true", {
      method: "POST",
      headers: { ...AUTH, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  const one = await post({ user: "sample_2" });
  assertEquals(one.status, 200);
  const run = one.body.run as RunSummary;
  assertEquals(Object.keys(run.users), ["sample_2"]);
  assertEquals(run.steps.fetch?.counts?.top_tracks_rows, 12);
  const bad = await post({ user: "Not A Name" });
  assertEquals(bad.status, 400);
  assertStringIncludes(String(bad.body.message), "is not an account name");
  const unknown = await post({ user: "carol" });
  assertEquals(unknown.status, 500);
  assertStringIncludes(String(unknown.body.message), "--user carol: no such account");
  await app.close();
});

Deno.test("?wait=true on a failing run answers 500 with the exit code and the one-line cause", async () => {
  await using env = await setup({ SPOTIFY_SOURCE: "api" }); // no token store: fetch fails
  const { log } = testLog();
  const app = new PipelineApp({ config: env.config, log, pipeline: pipelineTo("fetch") });
  const { status, body } = await call(app, "/run-top-tracks?wait=1", {
    method: "POST",
    headers: AUTH,
  });
  assertEquals(status, 500);
  assertEquals(body.error, "run_failed");
  assertEquals(body.exit_code, 2);
  assertStringIncludes(String(body.message), "spotify_tokens.json");
  assertEquals((body.run as { status: string }).status, "failed");
  await app.close();
});

Deno.test("a missing or wrong bearer token answers 401 on every endpoint but /healthz", async () => {
  await using env = await setup();
  const { log, lines } = testLog();
  const app = new PipelineApp({ config: env.config, log });
  const endpoints: [string, string][] = [
    ["POST", "/run-top-tracks"],
    ["GET", "/runs"],
    ["GET", "/runs/20261126T120000Z-ab12"],
    ["GET", "/readyz"],
    ["GET", "/no-such-route"],
  ];
  const wrong: Record<string, string>[] = [
    {},
    { authorization: "Bearer wrong-token-0123456789abcdef0" },
    { authorization: `Bearer ${TOKEN}x` },
    { authorization: `Basic ${btoa(`user:${TOKEN}`)}` },
    { authorization: TOKEN },
  ];
  for (const [method, path] of endpoints) {
    for (const headers of wrong) {
      const { status, body, headers: h } = await call(app, path, { method, headers });
      assertEquals(status, 401, `${method} ${path} with ${JSON.stringify(headers)}`);
      assertEquals(body.error, "unauthorized");
      assertStringIncludes(h.get("www-authenticate") ?? "", "Bearer");
    }
  }
  assertEquals((await call(app, "/healthz")).status, 200);
  assertEquals((await call(app, "/runs", { headers: AUTH })).status, 200);
  assertEquals(
    (await call(app, "/runs", { headers: { authorization: `bearer  ${TOKEN}` } })).status,
    200,
  );
  assert(!lines.join("\n").includes(TOKEN), "the token never reaches the log");
  await app.close();
});

Deno.test("two concurrent triggers: one run and one 409 naming the running id", async () => {
  // The run's Spotify requests wait at a gate, so the first run is certainly still going.
  const mock = startMockSpotify();
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const proxy = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await gate;
    const u = new URL(req.url);
    return await fetch(`${mock.url}${u.pathname}${u.search}`, {
      method: req.method,
      headers: req.headers,
      body: req.body,
    });
  });
  const dir = await Deno.makeTempDir({ prefix: "serve_test_" });
  try {
    const config = loadConfig({
      env: mockEnv(mock, dir, {
        SPOTIFY_API_URL: `http://127.0.0.1:${proxy.addr.port}`,
        PIPELINE_TRIGGER_TOKEN: TOKEN,
      }),
      envFile: false,
    });
    await writeMockTokens(mock, config.spotify.tokensFile);
    const { log } = testLog();
    const app = new PipelineApp({ config, log, pipeline: pipelineTo("fetch") });
    const post = () => call(app, "/run-top-tracks", { method: "POST", headers: AUTH });
    const [a, b] = await Promise.all([post(), post()]);
    const statuses = [a.status, b.status].sort();
    assertEquals(statuses, [202, 409]);
    const [started, refused] = a.status === 202 ? [a, b] : [b, a];
    assertEquals(refused.body.error, "already_running");
    assertEquals(refused.body.run_id, started.body.run_id);
    assertStringIncludes(String(refused.body.message), String(started.body.run_id));
    // A third one while it runs: 409 too; /readyz names the running run.
    assertEquals((await post()).status, 409);
    assertEquals((await call(app, "/readyz", { headers: AUTH })).body.running, started.body.run_id);
    assertEquals(app.running, [started.body.run_id]);
    open();
    await app.close();
    const runs = (await call(app, "/runs", { headers: AUTH })).body.runs as { run_id: string }[];
    assertEquals(runs.map((r) => r.run_id), [started.body.run_id]);
    // Once it is over, the next trigger starts.
    const app2 = new PipelineApp({ config, log, pipeline: pipelineTo("fetch") });
    assertEquals(
      (await call(app2, "/run-top-tracks?wait=true", { method: "POST", headers: AUTH })).status,
      200,
    );
    await app2.close();
  } finally {
    open();
    await proxy.shutdown();
    await mock.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a trigger takes over a stale lock left by a killed run", async () => {
  await using env = await setup();
  const child = new Deno.Command(Deno.execPath(), { args: ["eval", ""] }).spawn();
  await child.status;
  const stale: LockInfo = {
    pid: child.pid,
    started_at: "2026-11-25T00:00:00.000Z",
    run_id: "20261125T000000Z-dead",
    token: crypto.randomUUID(),
  };
  await Deno.mkdir(env.dir, { recursive: true });
  await Deno.writeTextFile(lockPath(env.config), JSON.stringify(stale));
  const { log, lines } = testLog();
  const app = new PipelineApp({ config: env.config, log, pipeline: pipelineTo("fetch") });
  const { status, body } = await call(app, "/run-top-tracks?wait=true", {
    method: "POST",
    headers: AUTH,
  });
  assertEquals(status, 200, JSON.stringify(body));
  assertStringIncludes(lines.join("\n"), `stale lock left by pid ${child.pid}`);
  await app.close();
});

Deno.test("a trigger while another process holds the lock answers 409 with that run id", async () => {
  await using env = await setup();
  const lock = await acquireRunLock(env.config, { runId: "20261126T000000Z-cafe" });
  try {
    const { log } = testLog();
    const app = new PipelineApp({ config: env.config, log });
    const { status, body } = await call(app, "/run-top-tracks", { method: "POST", headers: AUTH });
    assertEquals(status, 409);
    assertEquals(body.run_id, "20261126T000000Z-cafe");
    await app.close();
  } finally {
    await lock.release();
  }
});

Deno.test("serve --cron registers Deno.cron('top-tracks') with PIPELINE_SCHEDULE and 'recently-played' with PIPELINE_POLL_SCHEDULE; ticks run the pipeline and the poll", async () => {
  await using env = await setup({
    PIPELINE_SCHEDULE: "30 6 * * 1-5",
    PIPELINE_POLL_SCHEDULE: "*/15 * * * *",
  });
  const registered: { name: string; schedule: string; options: CronOptions }[] = [];
  const ticks = new Map<string, () => Promise<void>>();
  const cronFn: CronFn = (name, schedule, options, handler) => {
    registered.push({ name, schedule, options });
    ticks.set(name, handler);
    return new Promise<void>((resolve) =>
      options.signal?.addEventListener("abort", () => resolve())
    );
  };
  {
    await using server = await startServer(env.config, {
      cron: true,
      cronFn,
      pipeline: pipelineTo("fetch"),
    });
    // Monday to Friday in Deno.cron's weekday numbering (1 = Sunday).
    assertEquals(registered.map((r) => [r.name, r.schedule]), [
      ["top-tracks", "30 6 * * 2,3,4,5,6"],
      ["recently-played", "*/15 * * * *"],
    ]);
    assertEquals(registered[0]!.options.backoffSchedule, []);
    await ticks.get("top-tracks")!();
    const runs = await (await fetch(`${server.url}/runs`, { headers: AUTH })).json();
    assertEquals(runs.runs.length, 1);
    assertEquals(runs.runs[0].status, "partial");
    assertEquals(runs.runs[0].schedule, "daily");
    await ticks.get("recently-played")!();
    const polled = await (await fetch(`${server.url}/runs`, { headers: AUTH })).json();
    assertEquals(polled.runs.length, 2);
    assertEquals([polled.runs[0].schedule, polled.runs[0].streams], ["poll", ["recently_played"]]);
    // A tick while another run holds the lock is skipped with a warning, not an error.
    const lock = await acquireRunLock(env.config, { runId: "20261126T000000Z-beef" });
    await ticks.get("top-tracks")!();
    await ticks.get("recently-played")!();
    await lock.release();
    const after = await (await fetch(`${server.url}/runs`, { headers: AUTH })).json();
    assertEquals(after.runs.length, 2);
    assertStringIncludes(server.lines.join("\n"), "Scheduled run skipped");
  }
  // Stopping the server stops the schedules.
  assert(registered.every((r) => r.options.signal?.aborted));
});

Deno.test("PIPELINE_SCHEDULE keeps crontab(5) weekdays (0 and 7 = Sunday): translated to Deno.cron's numbering (1 = Sunday), each accepted by the real Deno.cron", async () => {
  const cases: [string, string][] = [
    ["0 0 * * *", "0 0 * * *"],
    ["30 6 * * 1-5", "30 6 * * 2,3,4,5,6"],
    ["0 0 * * 0", "0 0 * * 1"],
    ["0 0 * * 7", "0 0 * * 1"],
    ["0 0 * * 5-7", "0 0 * * 1,6,7"],
    ["0 0 * * 6,0", "0 0 * * 1,7"],
    ["0 0 * * */2", "0 0 * * 1,3,5,7"],
    ["0 0 * * 1/2", "0 0 * * 1,2,4,6"],
    ["0 0 1 * 0-6", "0 0 1 * *"],
  ];
  for (const [crontab, deno] of cases) assertEquals(toDenoCronSchedule(crontab), deno, crontab);
  // The real Deno.cron (a child with --unstable-cron) takes every translation; it refuses a 0.
  const code = `
    const out = {};
    for (const s of ${JSON.stringify(cases.map(([, d]) => d).concat("0 0 * * 0"))}) {
      const stop = new AbortController();
      try {
        const p = Deno.cron("probe", s, { signal: stop.signal }, () => {});
        stop.abort();
        await p.catch(() => {});
        out[s] = "ok";
      } catch (error) {
        out[s] = String(error);
      }
    }
    console.log(JSON.stringify(out));
  `;
  const child = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--unstable-cron", code],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const results = JSON.parse(new TextDecoder().decode(child.stdout)) as Record<string, string>;
  for (const [, deno] of cases) assertEquals(results[deno], "ok", deno);
  assert(results["0 0 * * 0"] !== "ok", "Deno.cron refuses weekday 0");
});

Deno.test("a schedule Deno.cron refuses is a ConfigError naming PIPELINE_SCHEDULE, and the server stops", async () => {
  await using env = await setup();
  const { log } = testLog();
  let port: number | undefined;
  const cronFn: CronFn = () => {
    throw new TypeError("Invalid cron schedule");
  };
  const error = await assertRejects(
    () => serve(env.config, { log, cron: true, cronFn, onListen: (a) => (port = a.port) }),
    ConfigError,
  );
  assertStringIncludes(error.message, 'PIPELINE_SCHEDULE="0 0 * * *" is refused by Deno.cron');
  assert(port !== undefined);
  // Nothing listens any more.
  await assertRejects(() => fetch(`http://127.0.0.1:${port}/healthz`), TypeError);
});

Deno.test("serve without --cron registers no schedule", async () => {
  await using env = await setup();
  let calls = 0;
  const cronFn: CronFn = () => {
    calls++;
    return Promise.resolve();
  };
  {
    await using _server = await startServer(env.config, { cronFn });
  }
  assertEquals(calls, 0);
});

Deno.test("serve refuses a non-loopback address without a token, and a short token", async () => {
  const { log } = testLog();
  await using open = await setup({ PIPELINE_HOST: "0.0.0.0", PIPELINE_TRIGGER_TOKEN: "" });
  const e1 = await assertRejects(() => serve(open.config, { log }), ConfigError);
  assertStringIncludes(e1.message, 'PIPELINE_HOST="0.0.0.0" is not a loopback address');
  await using short = await setup({ PIPELINE_TRIGGER_TOKEN: "abc123" });
  const e2 = await assertRejects(() => serve(short.config, { log }), ConfigError);
  assertStringIncludes(e2.message, "PIPELINE_TRIGGER_TOKEN is too short");
  assert(!e2.message.includes("abc123"));
  for (const token of ["two words of a long token", "tökentökentökentöken"]) {
    await using spaced = await setup({ PIPELINE_TRIGGER_TOKEN: token });
    const e3 = await assertRejects(() => serve(spaced.config, { log }), ConfigError);
    assertStringIncludes(e3.message, "PIPELINE_TRIGGER_TOKEN may hold only visible ASCII");
    assert(!e3.message.includes(token));
  }
  // A host name that does not resolve (.invalid never does): a config error, not a stack trace.
  await using unknown = await setup({ PIPELINE_HOST: "pipeline.invalid" });
  const e4 = await assertRejects(() => serve(unknown.config, { log }), ConfigError);
  assertStringIncludes(e4.message, "Cannot listen on pipeline.invalid:0 (PIPELINE_HOST");
  for (const h of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]) assert(isLoopback(h), h);
  for (const h of ["0.0.0.0", "::", "192.168.1.10", "example.com"]) assert(!isLoopback(h), h);
});

Deno.test("serve on loopback without a token runs open (the seed's curl trigger still works)", async () => {
  await using env = await setup({ PIPELINE_TRIGGER_TOKEN: "" });
  await using server = await startServer(env.config, { pipeline: pipelineTo("fetch") });
  const res = await fetch(`${server.url}/run-top-tracks?wait=true`, { method: "POST" });
  assertEquals(res.status, 200);
  await res.body?.cancel();
});

Deno.test("without a token: a request addressed to a foreign Host (DNS rebinding) or sent by a foreign page's Origin (cross-site POST) is 403; local ones are served", async () => {
  await using env = await setup({ PIPELINE_TRIGGER_TOKEN: "" });
  const { log } = testLog();
  const app = new PipelineApp({ config: env.config, log, pipeline: pipelineTo("fetch") });
  try {
    const at = (path: string, headers: Record<string, string>, method = "GET") =>
      app.handler(new Request(`http://127.0.0.1:8000${path}`, { method, headers }));
    for (
      const headers of <Record<string, string>[]> [
        { host: "evil.example:8000" },
        { host: "127.0.0.1.evil.example" },
        { host: "127.0.0.1:8000", origin: "https://evil.example" },
        { host: "localhost:8000", origin: "null" },
      ]
    ) {
      for (const [path, method] of [["/runs", "GET"], ["/run-top-tracks", "POST"]] as const) {
        const res = await at(path, headers, method);
        assertEquals(res.status, 403, `${method} ${path} ${JSON.stringify(headers)}`);
        assertEquals((await res.json()).error, "forbidden");
      }
    }
    assertEquals((await at("/healthz", { host: "evil.example" })).status, 200, "public route");
    for (
      const headers of <Record<string, string>[]> [
        { host: "127.0.0.1:8000" },
        { host: "localhost:8000", origin: "http://localhost:3000" },
        { host: "[::1]:8000" },
      ]
    ) {
      const res = await at("/runs", headers);
      assertEquals(res.status, 200, JSON.stringify(headers));
      await res.body?.cancel();
    }
    assertEquals(await listRunIds(env.config), [], "nothing was triggered");
  } finally {
    await app.close();
  }
  // with a token, the token decides (any Host, e.g. behind a reverse proxy)
  await using tokened = await setup();
  const guarded = new PipelineApp({ config: tokened.config, log });
  const res = await guarded.handler(
    new Request("http://127.0.0.1/runs", { headers: { ...AUTH, host: "pipeline.example.com" } }),
  );
  assertEquals(res.status, 200);
  await res.body?.cancel();
  await guarded.close();
});

Deno.test("a trigger the server cannot start (data folder unusable) answers 500 naming the cause, not 400", async () => {
  await using env = await setup();
  const file = join(env.dir, "a_file");
  await Deno.writeTextFile(file, "");
  const { log, lines } = testLog();
  const app = new PipelineApp({ config: { ...env.config, dataDir: file }, log });
  const res = await call(app, "/run-top-tracks", { method: "POST", headers: AUTH });
  assertEquals(res.status, 500);
  assertEquals(res.body.error, "cannot_start");
  assertEquals(res.body.exit_code, 2);
  assertStringIncludes(String(res.body.message), `PIPELINE_DATA_DIR="${file}"`);
  assert(!lines.join("\n").includes("stack"), lines.join("\n"));
  await app.close();
});

Deno.test("/readyz: ready on the sample; 503 naming the problem without tokens or near their end", async () => {
  await using env = await setup();
  const { log } = testLog();
  const ready = new PipelineApp({ config: env.config, log });
  const r1 = await call(ready, "/readyz", { headers: AUTH });
  assertEquals(r1.status, 200);
  assertEquals(r1.body.ready, true);
  assertEquals(r1.body.running, null);
  // The data folder must be writable, not just a folder (/proc/self takes no new file).
  const readOnly = new PipelineApp({ config: { ...env.config, dataDir: "/proc/self" }, log });
  const r2 = await call(readOnly, "/readyz", { headers: AUTH });
  assertEquals(r2.status, 503);
  const dataDir = (r2.body.checks as Record<string, { ok: boolean; detail: string }>).data_dir!;
  assertEquals(dataDir.ok, false);
  assertStringIncludes(dataDir.detail, "/proc/self is not writable (PIPELINE_DATA_DIR");
  await readOnly.close();
  // Not there yet: ready when its parent is writable (the first run creates it).
  const later = join(env.dir, "later", "data");
  const notYet = new PipelineApp({ config: { ...env.config, dataDir: later }, log });
  const r3 = await call(notYet, "/readyz", { headers: AUTH });
  assertEquals(r3.status, 200, JSON.stringify(r3.body));
  assertEquals(await Array.fromAsync(Deno.readDir(env.dir)), []);
  await notYet.close();

  const mock = startMockSpotify();
  try {
    const config = loadConfig({
      env: mockEnv(mock, env.dir, { PIPELINE_TRIGGER_TOKEN: TOKEN }),
      envFile: false,
    });
    const app = new PipelineApp({ config, log });
    const missing = await call(app, "/readyz", { headers: AUTH });
    assertEquals(missing.status, 503);
    const checks = missing.body.checks as Record<string, { ok: boolean; detail: string }>;
    assertEquals(checks.spotify_tokens?.ok, false);
    assertStringIncludes(checks.spotify_tokens!.detail, "deno task auth");

    await writeMockTokens(mock, config.spotify.tokensFile);
    assertEquals((await call(app, "/readyz", { headers: AUTH })).status, 200);

    const consented = new Date(Date.now() - 170 * 86_400_000); // ~10 days before the 6-month end
    await writeMockTokens(mock, config.spotify.tokensFile, { consentedAt: consented });
    const near = await call(app, "/readyz", { headers: AUTH });
    assertEquals(near.status, 503);
    const nearChecks = near.body.checks as Record<string, { ok: boolean; detail: string }>;
    assertStringIncludes(nearChecks.spotify_tokens!.detail, "refresh token ends on");
    await app.close();
  } finally {
    await mock.close();
  }
  await ready.close();
});

Deno.test("GET /runs lists recent runs newest first (limit), and shows a killed run as interrupted", async () => {
  await using env = await setup();
  const older = await createRun(env.config, { now: new Date("2026-11-24T00:00:00Z") });
  older.manifest.status = "succeeded";
  await older.save();
  const killed = await createRun(env.config, { now: new Date("2026-11-25T00:00:00Z") });
  killed.manifest.steps.fetch = { status: "running", started_at: "2026-11-25T00:00:01Z" };
  await killed.save(); // status "running", but no process holds the lock
  const { log } = testLog();
  const app = new PipelineApp({ config: env.config, log });
  const all = (await call(app, "/runs", { headers: AUTH })).body.runs as Record<string, unknown>[];
  assertEquals(all.map((r) => r.run_id), [killed.id, older.id]);
  assertEquals(all[0]!.status, "interrupted");
  assertEquals((all[0]!.steps as Record<string, { status: string }>).fetch!.status, "interrupted");
  const one = (await call(app, "/runs?limit=1", { headers: AUTH })).body.runs as unknown[];
  assertEquals(one.length, 1);
  for (const bad of ["0", "101", "x", "-1"]) {
    assertEquals((await call(app, `/runs?limit=${bad}`, { headers: AUTH })).status, 400, bad);
  }
  const detail = await call(app, `/runs/${older.id}`, { headers: AUTH });
  assertEquals(detail.status, 200);
  assertEquals((detail.body.run as { manifest: { run_id: string } }).manifest.run_id, older.id);
  await app.close();
});

Deno.test("bad input: 413, 415, 400 (bad JSON, fields, date), traversal, 404, 405 — all as JSON", async () => {
  await using env = await setup();
  const { log } = testLog();
  const app = new PipelineApp({ config: env.config, log, maxBodyBytes: 1024 });
  const post = (init: RequestInit, query = "") =>
    call(app, `/run-top-tracks${query}`, {
      method: "POST",
      ...init,
      headers: { ...AUTH, ...(init.headers as Record<string, string> ?? {}) },
    });
  const jsonType = { "content-type": "application/json" };

  // Oversized, declared and streamed without a length.
  const big = JSON.stringify({ date: "2026-11-25", pad: "x".repeat(5000) });
  assertEquals((await post({ body: big, headers: jsonType })).status, 413);
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i < 10; i++) c.enqueue(new Uint8Array(512).fill(32));
      c.close();
    },
  });
  const streamed = await post({ body: stream, headers: jsonType });
  assertEquals(streamed.status, 413);
  assertEquals(streamed.body.error, "payload_too_large");

  const form = await post({ body: "date=2026-11-25", headers: { "content-type": "text/plain" } });
  assertEquals(form.status, 415);
  assertEquals(form.body.error, "unsupported_media_type");
  assertEquals((await post({ body: "{}" })).status, 415); // no content type

  const badJson = await post({ body: '{"date": ', headers: jsonType });
  assertEquals(badJson.status, 400);
  assertEquals(badJson.body.error, "bad_json");
  assertEquals((await post({ body: "\xff\xfe", headers: jsonType })).status, 400);
  for (
    const body of [
      "[]",
      '"x"',
      '{"unknown": 1}',
      '{"date": "2026-02-30"}',
      '{"date": 20261125}',
      '{"to": "nowhere"}',
      '{"full_refresh": "yes"}',
    ]
  ) {
    const r = await post({ body, headers: jsonType });
    assertEquals(r.status, 400, body);
    assertEquals(typeof r.body.message, "string");
  }
  assertEquals((await post({}, "?wait=maybe")).status, 400);
  await assertRejects(() => Deno.stat(`${env.dir}/runs`), Deno.errors.NotFound); // no run started

  // Path traversal and malformed ids never reach the file system.
  for (
    const path of [
      "/runs/..%2F..%2Fetc%2Fpasswd",
      "/runs/..%5C..%5Cwindows",
      "/runs/20261126T120000Z-ab12%00",
      "/runs/%E0%A4%A",
      "/runs/20261126T120000Z-AB12",
    ]
  ) {
    const r = await call(app, path, { headers: AUTH });
    assertEquals(r.status, 400, path);
    assertEquals(r.body.error, "bad_run_id");
  }
  // `..` segments are resolved by the URL parser before routing: never a run lookup.
  assertEquals((await call(app, "/runs/../../etc/passwd", { headers: AUTH })).status, 404);
  assertEquals((await call(app, "/runs/%2e%2e/%2e%2e/etc/passwd", { headers: AUTH })).status, 404);
  assertEquals((await call(app, "/runs/20261126T120000Z-ab12", { headers: AUTH })).status, 404);
  assertEquals((await call(app, "/runs/a/b", { headers: AUTH })).status, 404);
  assertEquals((await call(app, "/nope", { headers: AUTH })).body.error, "not_found");

  const wrongMethod = await call(app, "/runs", { method: "DELETE", headers: AUTH });
  assertEquals(wrongMethod.status, 405);
  assertEquals(wrongMethod.headers.get("allow"), "GET, HEAD");
  const getTrigger = await call(app, "/run-top-tracks", { headers: AUTH });
  assertEquals(getTrigger.status, 405);
  assertEquals(getTrigger.headers.get("allow"), "POST");
  const head = await app.handler(request("/healthz", { method: "HEAD" }));
  const get = await app.handler(request("/healthz"));
  const getBody = new Uint8Array(await get.arrayBuffer());
  assertEquals([head.status, await head.text()], [200, ""]);
  assertEquals(head.headers.get("content-length"), String(getBody.length), "as GET would send");
  await app.close();
});

Deno.test("stopping serve does not wait for an idle client that never finishes its request (bounded grace)", async () => {
  await using env = await setup();
  const { log, lines } = testLog();
  const stop = new AbortController();
  let listening!: (addr: Deno.NetAddr) => void;
  const addr = new Promise<Deno.NetAddr>((r) => (listening = r));
  const done = serve(env.config, {
    log,
    signal: stop.signal,
    onListen: listening,
    shutdownGraceMs: 300,
  });
  const { port } = await addr;
  // half a request: the headers promise 100 bytes of body, 10 come, then nothing
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(
    new TextEncoder().encode(
      `POST /run-top-tracks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\n` +
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n" + '{"date": "',
    ),
  );
  await new Promise((r) => setTimeout(r, 200)); // the server is reading the body
  const started = performance.now();
  stop.abort();
  const outcome = await Promise.race([
    done.then(() => "stopped"),
    new Promise((r) => setTimeout(() => r("still waiting"), 10_000)),
  ]);
  conn.close();
  assertEquals(outcome, "stopped");
  assert(performance.now() - started < 5_000, "within the grace, not the client's pleasure");
  assertStringIncludes(lines.join("\n"), "without waiting longer for open connections");
});

Deno.test("parseCron(): the values each field selects, as crontab(5) reads them; anything else is undefined", async () => {
  const { parseCron } = await import("../lib/cron_expr.ts");
  const f = parseCron("*/15 6-8 1,15 * 1-5")!;
  assertEquals(f[0], [0, 15, 30, 45]);
  assertEquals(f[1], [6, 7, 8]);
  assertEquals(f[2], [1, 15]);
  assertEquals(f[3]!.length, 12);
  assertEquals(f[4], [1, 2, 3, 4, 5]);
  assertEquals(parseCron("5/20 * * * *")![0], [5, 25, 45], "a/n runs to the end of the range");
  for (
    const bad of ["61 * * * *", "*/0 * * * *", "5-1 * * * *", "0 0 * *", "0 0 * * 8", "x * * * *"]
  ) {
    assertEquals(parseCron(bad), undefined, bad);
  }
});
