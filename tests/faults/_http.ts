/**
 * The fault suite's HTTP-trigger cases (private to `tests/faults/`): `serve` runs as a child
 * process on the local data folder with the trigger token configured; a triggered run that fails
 * answers its documented exit code and one-line cause, the CLI's `--resume` completes it, and
 * every answer (bodies and headers, 401s included) goes to the secrets scan. Bad input (413, 415,
 * bad JSON, path traversal in `/runs/:id`) is covered by `tests/serve_test.ts`.
 * @module
 */

import { freePort } from "../stand_ins.ts";
import { spawnScript, waitFor } from "./_harness.ts";
import { checkSuccess, EXIT, round, type Suite } from "./_world.ts";

const TOP_TRACKS = "/v1/me/top/tracks";
const FILE_LIMIT = 512;
const FLOOD = 1_100;

/** The HTTP cases, each a step of the suite's test. */
export async function httpCases(t: Deno.TestContext, s: Suite): Promise<void> {
  const port = freePort();
  const server = spawnScript("serve.ts", [], s.localEnv({ PIPELINE_PORT: String(port) }), {
    cwd: s.root,
    // A file limit a flood of sockets can reach (the half-open case below).
    wrap: ["bash", "-c", `ulimit -n ${FILE_LIMIT} && exec "$@"`, "serve"],
    transcripts: s.transcripts,
    label: "serve",
    timeoutMs: 600_000,
  });
  const base = `http://127.0.0.1:${port}`;
  const auth = { authorization: `Bearer ${s.secrets.triggerToken}` };
  const call = async (path: string, init: RequestInit = {}) => {
    const res = await fetch(base + path, init);
    const text = await res.text();
    const headers = [...res.headers].map(([k, v]) => `${k}: ${v}`).join("\n");
    s.transcripts.push({
      label: `HTTP ${init.method ?? "GET"} ${path} → ${res.status}`,
      text: `${headers}\n\n${text}`,
    });
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(text);
    } catch { /* not JSON */ }
    return { status: res.status, body };
  };
  const trigger = (date: string) =>
    call("/run-top-tracks?wait=true", {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ date, to: "load" }),
    });
  try {
    await waitFor(async () => {
      try {
        const r = await fetch(`${base}/healthz`);
        await r.body?.cancel();
        return r.ok || undefined;
      } catch {
        return undefined;
      }
    }, { timeoutMs: 60_000, intervalMs: 100, what: "serve to listen" });

    await t.step(
      "http: a missing, wrong or truncated bearer token answers 401 and never echoes the token",
      async () => {
        const problems: string[] = [];
        for (
          const authorization of [
            undefined,
            "Bearer wrong-token-0123456789",
            `Bearer ${s.secrets.triggerToken.slice(0, -1)}`,
            `Basic ${btoa(`user:${s.secrets.triggerToken}`)}`,
          ]
        ) {
          const r = await call("/run-top-tracks", {
            method: "POST",
            headers: authorization ? { authorization } : {},
          });
          if (r.status !== 401) problems.push(`${authorization ?? "no token"}: ${r.status}`);
        }
        if (problems.length) throw new Error(problems.join("; "));
      },
    );

    await t.step(
      "http: a triggered run that fails (refresh token revoked) answers 500 with exit 3 and its one-line cause; the CLI's --resume completes it",
      async () => {
        const started = performance.now();
        const date = s.nextDate();
        s.sources.setDay("default");
        s.sources.spotify.fault(TOP_TRACKS, { kind: "expired_token" });
        s.sources.spotify.state.invalidGrant = true;
        const r = await trigger(date);
        const problems: string[] = [];
        const message = String(r.body.message ?? "");
        if (r.status !== 500) problems.push(`status ${r.status}`);
        if (r.body.exit_code !== EXIT.source) problems.push(`exit_code ${r.body.exit_code}`);
        if (!/invalid_grant/.test(message) || message.includes("\n")) {
          problems.push(`cause ${JSON.stringify(message)}`);
        }
        s.sources.spotify.state.invalidGrant = false;
        await s.sources.writeTokens(s.local);
        const resumed = await s.pipeline(["--resume", "--to", "load"], {}, {
          label: "http-trigger-revoked (--resume)",
        });
        problems.push(...checkSuccess(resumed));
        problems.push(...await s.checkDay(date, "default"));
        s.days.push({ date, caseId: "http-trigger-revoked", variant: "default" });
        s.recordFailure(
          {
            id: "http-trigger-revoked",
            category: "Spotify",
            fault: "a run started over HTTP meets a revoked refresh token",
            injected:
              "mock Spotify: expired-token fault + invalidGrant switch; POST /run-top-tracks?wait=true",
          },
          {
            exit_code: Number(r.body.exit_code),
            cause: message,
            recovery: "new tokens, then `deno task pipeline --resume` (the run the server started)",
            snapshot_date: date,
          },
          started,
          problems,
        );
      },
    );

    await t.step(
      "http: a triggered run succeeds; /runs, /runs/:id and /readyz answer without a secret",
      async () => {
        const date = s.nextDate();
        s.sources.setDay("default");
        const r = await trigger(date);
        const problems: string[] = [];
        if (r.status !== 200) problems.push(`trigger: ${r.status} ${JSON.stringify(r.body)}`);
        const id = (r.body.run as { run_id?: string; manifest?: { run_id?: string } } | undefined)
          ?.manifest?.run_id ?? (r.body.run as { run_id?: string } | undefined)?.run_id;
        const runs = await call("/runs", { headers: auth });
        if (runs.status !== 200) problems.push(`/runs: ${runs.status}`);
        if (id) {
          const one = await call(`/runs/${id}`, { headers: auth });
          if (one.status !== 200) problems.push(`/runs/${id}: ${one.status}`);
        } else problems.push(`no run id in ${JSON.stringify(r.body).slice(0, 300)}`);
        await call("/readyz", { headers: auth });
        await call("/healthz");
        problems.push(...await s.checkDay(date, "default"));
        s.days.push({ date, caseId: "http-trigger-ok", variant: "default" });
        if (problems.length) throw new Error(problems.join("; "));
      },
    );

    await t.step(
      `http: ${FLOOD} half-open connections under a ${FILE_LIMIT}-descriptor limit: serve stays up, /healthz answers and a triggered run succeeds during the flood`,
      async () => {
        const started = performance.now();
        const problems: string[] = [];
        const date = s.nextDate();
        const sockets = await openHalfOpen(port, FLOOD);
        try {
          // while every socket stays open: health, then a real run (its dbt child and DuckDB
          // need descriptors too)
          const health = await waitFor(async () => {
            try {
              const r = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2_000) });
              await r.body?.cancel();
              return r.status === 200 || undefined;
            } catch {
              return undefined;
            }
          }, { timeoutMs: 30_000, intervalMs: 200, what: "/healthz during the flood" }).then(
            () => true,
            () => false,
          );
          if (!health) problems.push("/healthz did not answer 200 within 30 s during the flood");
          s.sources.setDay("default");
          const r = await retryBusy(() => trigger(date));
          if (r.status !== 200) {
            problems.push(`trigger during the flood: ${r.status} ${JSON.stringify(r.body)}`);
          }
          problems.push(...await s.checkDay(date, "default"));
          s.days.push({ date, caseId: "http-half-open-flood", variant: "default" });
        } finally {
          for (const c of sockets) {
            try {
              c.close();
            } catch { /* closed by the server */ }
          }
        }
        const after = await fetch(`${base}/healthz`).then(async (r) => {
          await r.body?.cancel();
          return r.status;
        }, (e) => String(e));
        if (after !== 200) problems.push(`/healthz after the flood: ${after}`);
        s.record({
          id: "http-half-open-flood",
          category: "HTTP",
          fault: `${FLOOD} clients open connections and never finish their headers`,
          injected:
            `${FLOOD} loopback sockets sending half a request head; serve under ulimit -n ${FILE_LIMIT}`,
          outcome: "succeeded",
          exit_code: 0,
          resumed: problems.length === 0,
          recovery: "none needed: heads time out, the oldest is dropped at the connection cap",
          snapshot_date: date,
          seconds: round((performance.now() - started) / 1000),
        }, problems);
      },
    );
  } finally {
    server.kill("SIGTERM");
  }
  const result = await server.result;
  // Descriptors running short is survivable by design (the guard logs "Cannot accept connections"
  // and backs off); a panic or an uncaught error is not.
  const lines = (result.stderr + "\n" + result.stdout).split("\n");
  const fatal = lines.filter((l) => /panicked|Uncaught/.test(l));
  if (fatal.length || result.code !== 0) {
    throw new Error(`serve ended badly (exit ${result.code}):\n${fatal.join("\n").slice(0, 4000)}`);
  }
  const short = lines.filter((l) => /Too many open files/.test(l));
  if (short.length) {
    console.log(`serve ran short of descriptors ${short.length} time(s), and went on:`);
    for (const l of short.slice(0, 5)) console.log(`  ${l.slice(0, 300)}`);
  }
}

/** `count` connections to the port, each sending half a request head and then nothing. */
async function openHalfOpen(port: number, count: number): Promise<Deno.Conn[]> {
  const half = new TextEncoder().encode("GET /runs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
  const out: Deno.Conn[] = [];
  for (let i = 0; i < count; i += 100) {
    const batch = await Promise.allSettled(
      Array.from({ length: Math.min(100, count - i) }, async () => {
        const c = await Deno.connect({ hostname: "127.0.0.1", port });
        out.push(c);
        await c.write(half).catch(() => {});
      }),
    );
    for (const b of batch) if (b.status === "rejected") throw b.reason;
  }
  return out;
}

/** Calls again while the server answers 503 (every connection slot busy). */
async function retryBusy<T extends { status: number }>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 0;; attempt++) {
    const r = await call().catch((error) => {
      if (attempt >= 50) throw error;
      return undefined;
    });
    if (r && (r.status !== 503 || attempt >= 50)) return r;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
