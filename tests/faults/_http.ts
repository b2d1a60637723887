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

/** The HTTP cases, each a step of the suite's test. */
export async function httpCases(t: Deno.TestContext, s: Suite): Promise<void> {
  const port = freePort();
  const server = spawnScript("serve.ts", [], s.localEnv({ PIPELINE_PORT: String(port) }), {
    cwd: s.root,
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
        s.record({
          id: "http-trigger-revoked",
          category: "Spotify",
          fault: "a run started over HTTP meets a revoked refresh token",
          injected:
            "mock Spotify: expired-token fault + invalidGrant switch; POST /run-top-tracks?wait=true",
          outcome: "clean failure",
          exit_code: Number(r.body.exit_code),
          cause: message,
          resumed: problems.length === 0,
          recovery: "new tokens, then `deno task pipeline --resume` (the run the server started)",
          snapshot_date: date,
          seconds: round((performance.now() - started) / 1000),
        }, problems);
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
  } finally {
    server.kill("SIGTERM");
    await server.result;
  }
}
