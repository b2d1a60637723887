/**
 * The fault-injection suite (`deno task test:faults`). Every case injects one fault through the
 * real boundary — the mock Spotify's and the features mock's switches, a TCP proxy resetting
 * connections, a read-only lake folder, a DuckDB file held by another process, a broken dbt venv,
 * a bad row, SIGKILL of a child pipeline during each step; in the prod profile an HTTP proxy in
 * front of moto and fakesnow (down, 500s, slow), IAM in moto — runs the real pipeline in a child
 * process, and checks the outcome: retried and succeeded, or stopped with its documented exit code
 * and a one-line cause, then resumed to the same final state as a clean run.
 *
 * Each case is one snapshot day of a shared data folder (a year of bad days in one warehouse);
 * at the end the warehouse is compared with a baseline built from the same days without faults:
 * same row counts in the raw table's latest loads, `top_tracks` (per day), `audio_features` and
 * `inter_top_weekly_audio_features`, no duplicate key in any of them. Everything produced (child
 * output, run folders, lake, warehouse files, dbt logs, HTTP answers) is searched for the fake
 * secrets configured everywhere. The figures table is printed and written to
 * `.data/faults/results.json`.
 *
 * SIGKILLs land at exact points through a small LD_PRELOAD library compiled with `cc` (and strace
 * for DuckDB's WAL); without them the suite kills by polling the manifest (`FAULTS_NO_SHIM=1`
 * forces that fallback). The read-only lake uses a private mount namespace (`unshare -m`, root)
 * and falls back to a file in the way of the folder.
 */

import { join } from "node:path";
import { loadConfig } from "../../lib/config.ts";
import { runPipeline } from "../../lib/pipeline.ts";
import type { StepName } from "../../lib/run.ts";
import { testLog } from "../_spotify_test_util.ts";
import { httpCases } from "./_http.ts";
import { prodCases } from "./_prod.ts";
import {
  canUnshareMounts,
  type ChildResult,
  compileKillShim,
  duckCounts,
  duckSql,
  finalError,
  fullDiskMountWrap,
  holdDuckDb,
  logLines,
  readManifest,
  readOnlyMountWrap,
  ROOT,
  runIds,
  spawnScript,
  TcpResetProxy,
  type Transcript,
  waitFor,
  waitForStepRunning,
  type WarehouseCounts,
} from "./_harness.ts";
import {
  checkFailure,
  checkSuccess,
  collectFiles,
  type DayVariant,
  EXIT,
  latestManifest,
  makeSecrets,
  type Outcome,
  retries,
  round,
  secretNeedles,
  Sources,
  Suite,
  verifiedSkips,
} from "./_world.ts";

/** Where the figures go (not committed: `.data/` is ignored). */
const RESULTS_FILE = join(ROOT, ".data", "faults", "results.json");

/** What a failing attempt must show. */
interface FailureCase {
  id: string;
  category: string;
  fault: string;
  injected: string;
  exit: number;
  cause: RegExp;
  /** The step that must fail. */
  step: StepName;
  variant?: DayVariant;
  /** Sets the fault (after the day's data is set). */
  inject?: () => Promise<unknown> | void;
  /** Removes the fault before the resume. */
  heal?: () => Promise<unknown> | void;
  env?: Record<string, string>;
  resumeEnv?: Record<string, string>;
  wrap?: string[];
  notes?: string;
}

/** A fault that must stop the run cleanly, then `--resume` brings the day to the clean state. */
async function failThenResume(s: Suite, c: FailureCase): Promise<void> {
  const started = performance.now();
  const date = s.nextDate();
  const variant = c.variant ?? "default";
  s.sources.setDay(variant);
  await c.inject?.();
  // a fault before transform: the day to load; in transform: the whole run (dbt takes longer)
  const to = c.step === "transform" ? [] : ["--to", "load"];
  const timeoutMs = c.step === "transform" ? 180_000 : undefined;
  const failed = await s.pipeline(["--date", date, ...to], c.env, {
    label: `${c.id} (fault)`,
    wrap: c.wrap,
    timeoutMs,
  });
  const { cause, problems } = checkFailure(failed, { exit: c.exit, cause: c.cause });
  const m = await latestManifest(s.local);
  const record = m?.steps[c.step];
  if (m?.snapshot_date !== date) problems.push("the failed run's manifest is not the latest");
  else {
    if (m.status !== "failed") problems.push(`run status ${m.status}`);
    if (record?.status !== "failed") problems.push(`${c.step} is ${record?.status}, not failed`);
    if (record?.exit_code !== c.exit) problems.push(`manifest exit_code ${record?.exit_code}`);
    if (!record?.error || record.error.includes("\n")) problems.push("manifest error not one line");
  }
  await c.heal?.();
  s.sources.setDay(variant);
  const resumed = await s.pipeline(["--resume", ...to], c.resumeEnv ?? c.env, {
    label: `${c.id} (--resume)`,
    timeoutMs,
  });
  problems.push(...checkSuccess(resumed));
  const before = STEPS.slice(0, STEPS.indexOf(c.step));
  const skipped = verifiedSkips(resumed);
  if (before.some((st) => !skipped.includes(st))) {
    problems.push(`resume skipped ${skipped.join(",") || "nothing"}, expected ${before.join(",")}`);
  }
  problems.push(...await s.checkDay(date, variant));
  s.days.push({ date, caseId: c.id, variant });
  s.recordFailure(
    c,
    {
      exit_code: failed.code,
      cause,
      recovery: "--resume",
      snapshot_date: date,
      ...(c.notes ? { notes: c.notes } : {}),
    },
    started,
    problems,
  );
}

/** What an absorbed fault must show. */
interface AbsorbedCase {
  id: string;
  category: string;
  fault: string;
  injected: string;
  outcome: Outcome;
  variant?: DayVariant;
  inject?: () => Promise<unknown> | void;
  env?: Record<string, string>;
  /** Extra checks on the successful run. */
  check?: (r: ChildResult) => Promise<string[]> | string[];
  notes?: string;
}

/** A fault the run must absorb (retries, a provider skipped) and still load the day. */
async function absorbed(s: Suite, c: AbsorbedCase): Promise<ChildResult> {
  const started = performance.now();
  const date = s.nextDate();
  const variant = c.variant ?? "default";
  s.sources.setDay(variant);
  await c.inject?.();
  const r = await s.pipeline(["--date", date, "--to", "load"], c.env, { label: c.id });
  const problems = checkSuccess(r);
  if (c.outcome === "retried" && retries(r) === 0) problems.push("no retry was logged");
  problems.push(...(await c.check?.(r) ?? []));
  s.sources.setDay("default");
  problems.push(...await s.checkDay(date, variant));
  s.days.push({ date, caseId: c.id, variant });
  s.record({
    id: c.id,
    category: c.category,
    fault: c.fault,
    injected: c.injected,
    outcome: c.outcome,
    exit_code: r.code,
    resumed: null,
    snapshot_date: date,
    seconds: round((performance.now() - started) / 1000),
    ...(c.notes ? { notes: c.notes } : {}),
  }, problems);
  return r;
}

const STEPS: StepName[] = ["fetch", "enrich", "write", "upload", "load", "transform", "report"];
const TOP_TRACKS = "/v1/me/top/tracks";

Deno.test({
  name:
    "fault suite: every injected fault is retried or fails cleanly, then resumes to the clean state; no row lost or doubled, no secret leaked",
  // child processes, servers and the DuckDB binding are opened and closed by the steps
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const root = await Deno.makeTempDir({ prefix: "fault_suite_" });
  const secrets = await makeSecrets();
  const sources = await Sources.start(secrets, join(root, "catalog"));
  const s = new Suite(root, secrets, sources);
  const spotify = sources.spotify;
  const tokensFile = join(s.local, "spotify_tokens.json");
  try {
    await sources.writeTokens(s.local, { expired: true });
    // a token store readable by others is reported (and still used)
    await Deno.chmod(tokensFile, 0o644);

    // ---------------------------------------------------------------- Spotify
    await t.step(
      "spotify: a 429 storm shorter than the retry budget is waited out (Retry-After)",
      async () => {
        await absorbed(s, {
          id: "spotify-429-storm",
          category: "Spotify",
          fault: "429 ×3 with Retry-After: 1 on top tracks",
          injected: "mock Spotify fault switch",
          outcome: "retried",
          inject: () =>
            spotify.fault(TOP_TRACKS, { kind: "status", status: 429, retryAfter: "1" }, 3),
          check: (r) => {
            const problems: string[] = [];
            const waits = logLines(r.stderr).filter((l) => l.retry_after_ms === 1000).length;
            if (waits < 3) problems.push(`Retry-After honoured ${waits} times, expected 3`);
            const mode = logLines(r.stderr).some((l) =>
              l.level === "warn" && /spotify_tokens\.json" has mode 0644/.test(l.msg)
            );
            if (!mode) problems.push("the 0644 token store was not reported");
            const refreshed = logLines(r.stderr).some((l) =>
              l.msg === "Spotify access token refreshed"
            );
            if (!refreshed) problems.push("the expired access token was not refreshed");
            return problems;
          },
          notes:
            "also: the expired access token is refreshed, and the token store's mode 0644 is reported",
        });
        await Deno.chmod(tokensFile, 0o600);
      },
    );

    await t.step(
      "spotify: a 429 storm outlasting the retry budget stops with exit 3, then resumes",
      async () => {
        await failThenResume(s, {
          id: "spotify-429-exhausted",
          category: "Spotify",
          fault: "429 with Retry-After: 1, every time",
          injected: "mock Spotify fault switch",
          step: "fetch",
          exit: EXIT.source,
          cause: /^GET http:\/\/127\.0\.0\.1:\d+\/v1\/me\/top\/tracks\?.* failed with HTTP 429/,
          inject: () =>
            spotify.fault(TOP_TRACKS, { kind: "status", status: 429, retryAfter: "1" }, 100),
        });
      },
    );

    await t.step("spotify: 500, 502 and 503 in a row are retried", async () => {
      await absorbed(s, {
        id: "spotify-5xx",
        category: "Spotify",
        fault: "500, 502, 503 on consecutive top-tracks requests",
        injected: "mock Spotify fault switch",
        outcome: "retried",
        inject: () => {
          for (const status of [500, 502, 503]) {
            spotify.fault(TOP_TRACKS, { kind: "status", status });
          }
        },
        check: (r) => retries(r) >= 3 ? [] : [`${retries(r)} retries logged, expected 3`],
      });
    });

    await t.step(
      "spotify: 503 outlasting the retries stops with exit 3, then resumes",
      async () => {
        await failThenResume(s, {
          id: "spotify-503-exhausted",
          category: "Spotify",
          fault: "503 on every top-tracks request",
          injected: "mock Spotify fault switch",
          step: "fetch",
          exit: EXIT.source,
          cause: /failed with HTTP 503/,
          inject: () => spotify.fault(TOP_TRACKS, { kind: "status", status: 503 }, 100),
        });
      },
    );

    await t.step("spotify: an answer slower than the timeout is retried", async () => {
      await absorbed(s, {
        id: "spotify-slow-once",
        category: "Spotify",
        fault: "one answer 4 s late (timeout 1.5 s)",
        injected: "mock Spotify slow switch",
        outcome: "retried",
        inject: () => spotify.fault(TOP_TRACKS, { kind: "slow", delayMs: 4000 }),
        check: (r) =>
          logLines(r.stderr).some((l) => /No answer within 1500 ms/.test(String(l.cause)))
            ? []
            : ["no timeout was logged"],
      });
    });

    await t.step(
      "spotify: every answer slower than the timeout stops with exit 3, then resumes",
      async () => {
        await failThenResume(s, {
          id: "spotify-slow-always",
          category: "Spotify",
          fault: "every answer 4 s late (timeout 1.5 s)",
          injected: "mock Spotify slow switch",
          step: "fetch",
          exit: EXIT.source,
          cause: /Cannot fetch top tracks from Spotify: No answer within 1500 ms/,
          inject: () => spotify.fault(TOP_TRACKS, { kind: "slow", delayMs: 4000 }, 100),
        });
      },
    );

    const reset = new TcpResetProxy(
      new URL(spotify.url).port ? Number(new URL(spotify.url).port) : 80,
    );
    try {
      await t.step("spotify: connections reset by the server are retried", async () => {
        await absorbed(s, {
          id: "spotify-reset-twice",
          category: "Spotify",
          fault: "two connections accepted then closed without an answer",
          injected: "TCP proxy in front of the mock (accept, read, close)",
          outcome: "retried",
          env: { SPOTIFY_API_URL: reset.url },
          inject: () => {
            reset.resetNext = 2;
          },
          check: () => reset.resets >= 2 ? [] : [`${reset.resets} connections reset`],
        });
      });

      await t.step("spotify: every connection reset stops with exit 3, then resumes", async () => {
        await failThenResume(s, {
          id: "spotify-reset-always",
          category: "Spotify",
          fault: "every connection accepted then closed",
          injected: "TCP proxy in front of the mock (accept, read, close)",
          step: "fetch",
          exit: EXIT.source,
          cause: /Cannot fetch top tracks from Spotify: Request failed: /,
          env: { SPOTIFY_API_URL: reset.url },
          inject: () => {
            reset.resetAll = true;
          },
          heal: () => {
            reset.resetAll = false;
          },
        });
      });
    } finally {
      await reset.close();
    }

    await t.step(
      "spotify: malformed JSON stops with exit 3 naming the URL, then resumes",
      async () => {
        await failThenResume(s, {
          id: "spotify-malformed-json",
          category: "Spotify",
          fault: "200 with a JSON body cut in the middle",
          injected: "mock Spotify fault switch",
          step: "fetch",
          exit: EXIT.source,
          cause:
            /^Spotify answered http:\/\/127\.0\.0\.1:\d+\/v1\/me\/top\/tracks\?.* with a body that is not JSON/,
          inject: () => spotify.fault(TOP_TRACKS, { kind: "malformed" }),
        });
      },
    );

    await t.step(
      "spotify: 401 with a revoked refresh token (invalid_grant) stops with exit 3; auth again, resume",
      async () => {
        await failThenResume(s, {
          id: "spotify-invalid-grant",
          category: "Spotify",
          fault: "401 on top tracks, then invalid_grant on the refresh",
          injected: "mock Spotify: expired-token fault + invalidGrant switch",
          step: "fetch",
          exit: EXIT.source,
          cause: /invalid_grant/,
          inject: () => {
            spotify.fault(TOP_TRACKS, { kind: "expired_token" });
            spotify.state.invalidGrant = true;
          },
          heal: async () => {
            spotify.state.invalidGrant = false;
            // what `deno task auth` leaves: a new consent's tokens
            await sources.writeTokens(s.local);
          },
          notes: "recovery: new tokens (as `deno task auth` writes them), then --resume",
        });
        const err = finalError(
          s.transcripts.findLast((t) =>
            t.label.includes("invalid-grant (fault)") && t.label.endsWith("(stderr)")
          )!.text,
        );
        if (!/deno task auth/.test(`${err?.msg} ${err?.hint}`)) {
          throw new Error(
            `invalid_grant does not say to run deno task auth: ${JSON.stringify(err)}`,
          );
        }
      },
    );

    await t.step("spotify: an empty top-tracks list loads an empty day and succeeds", async () => {
      await absorbed(s, {
        id: "spotify-empty-list",
        category: "Spotify",
        fault: "top tracks answer an empty list (a new account)",
        injected: "mock Spotify data",
        outcome: "succeeded",
        variant: "empty",
        check: (r) =>
          logLines(r.stderr).some((l) => /returned no top tracks/.test(l.msg))
            ? []
            : ["no warning about the empty list"],
      });
    });

    // ---------------------------------------------------------------- enrichment
    await t.step(
      "enrichment: ReccoBeats throttling (429 + Retry-After) is waited out",
      async () => {
        await absorbed(s, {
          id: "reccobeats-429",
          category: "enrichment",
          fault: "ReccoBeats answers 429 with Retry-After: 1, twice",
          injected: "features mock switch",
          outcome: "retried",
          inject: () => {
            sources.features.faults.retryAfter = "1";
            sources.features.faults.reccobeats429 = 2;
          },
        });
      },
    );

    await t.step(
      "enrichment: ReccoBeats down — the run goes on with the other providers and warns; a re-run of the day restores its features",
      async () => {
        const started = performance.now();
        const date = s.nextDate();
        sources.setDay("default");
        sources.features.faults.reccobeats500 = 1000;
        const r = await s.pipeline(["--date", date, "--to", "load"], {}, {
          label: "reccobeats-down",
        });
        const problems = checkSuccess(r);
        const m = await latestManifest(s.local);
        if (!m?.warnings.some((w) => /ReccoBeats .*failed/.test(w))) {
          problems.push(`no run warning about ReccoBeats: ${JSON.stringify(m?.warnings)}`);
        }
        const coverage =
          (m?.steps.enrich?.summary?.coverage as { by_source?: Record<string, number> })
            ?.by_source;
        if (coverage?.reccobeats !== 0) problems.push(`ReccoBeats filled ${coverage?.reccobeats}`);
        sources.setDay("default");
        // the next day's job, or by hand: the same day again once ReccoBeats is back
        const again = await s.pipeline(["--date", date, "--to", "load"], {}, {
          label: "reccobeats-down (re-run of the day)",
        });
        problems.push(...checkSuccess(again));
        const m2 = await latestManifest(s.local);
        const filled =
          (m2?.steps.enrich?.summary?.coverage as { by_source?: Record<string, number> })
            ?.by_source?.reccobeats ?? 0;
        if (filled === 0) problems.push("the re-run got nothing from ReccoBeats");
        if (m2?.steps.load?.counts?.files_loaded !== 1) {
          problems.push("the re-run's new features were not loaded (latest load wins)");
        }
        problems.push(...await s.checkDay(date, "default"));
        s.days.push({ date, caseId: "reccobeats-down", variant: "default" });
        s.record({
          id: "reccobeats-down",
          category: "enrichment",
          fault: "ReccoBeats answers 500 to everything",
          injected: "features mock switch",
          outcome: "degraded",
          exit_code: r.code,
          cause: m?.warnings.find((w) => /ReccoBeats/.test(w)),
          resumed: problems.length === 0,
          recovery: "re-run of the day when ReccoBeats is back (its load replaces the day's rows)",
          snapshot_date: date,
          seconds: round((performance.now() - started) / 1000),
        }, problems);
      },
    );

    const catalog = sources.catalog;
    const catalogText = await Deno.readTextFile(catalog);
    await t.step(
      "enrichment: the CSV catalog missing stops with exit 2 naming it, then resumes",
      async () => {
        await failThenResume(s, {
          id: "csv-missing",
          category: "enrichment",
          fault: "AUDIO_FEATURES_CSV names a file that is not there",
          injected: "file removed",
          step: "enrich",
          exit: EXIT.config,
          cause: new RegExp(`Cannot read audio features from "${catalog}": no such file`),
          inject: () => Deno.remove(catalog),
          heal: () => Deno.writeTextFile(catalog, catalogText),
        });
      },
    );

    const root0 = Deno.uid() === 0;
    await t.step(
      `enrichment: the CSV catalog unreadable (${
        root0 ? "a folder in its place" : "mode 000"
      }) stops with exit 2, then resumes`,
      async () => {
        await failThenResume(s, {
          id: "csv-unreadable",
          category: "enrichment",
          fault: root0 ? "a folder where the CSV file should be" : "CSV file with mode 000",
          injected: root0
            ? "folder in place of the file (tests run as root, whom mode 000 does not stop)"
            : "chmod 000",
          step: "enrich",
          exit: EXIT.config,
          cause: root0
            ? new RegExp(`Cannot read audio features from "${catalog}": not a file`)
            : /permission denied/i,
          inject: async () => {
            if (root0) {
              await Deno.remove(catalog);
              await Deno.mkdir(catalog);
            } else await Deno.chmod(catalog, 0o000);
          },
          heal: async () => {
            if (root0) {
              await Deno.remove(catalog);
              await Deno.writeTextFile(catalog, catalogText);
            } else await Deno.chmod(catalog, 0o644);
          },
          notes: root0
            ? "root reads a mode-000 file, so an honest 'cannot read' here is a folder in its place"
            : undefined,
        });
      },
    );

    await t.step(
      "enrichment: a CSV with the wrong columns stops with exit 2 naming needed and found columns, then resumes",
      async () => {
        await failThenResume(s, {
          id: "csv-wrong-columns",
          category: "enrichment",
          fault: "the catalog has other columns (song,singer,year)",
          injected: "file content",
          step: "enrich",
          exit: EXIT.config,
          cause:
            /missing an id column .*any audio-feature column \(danceability, .*found: song, singer, year/,
          inject: () => Deno.writeTextFile(catalog, "song,singer,year\nA,B,2020\n"),
          heal: () => Deno.writeTextFile(catalog, catalogText),
        });
      },
    );

    await t.step(
      "enrichment: a provider's value outside the warehouse's range (tempo 320) is rejected and counted, never loaded",
      async () => {
        await absorbed(s, {
          id: "features-out-of-range",
          category: "enrichment",
          fault: "Spotify's audio features give one track tempo 320 BPM (dbt accepts 0..300)",
          injected: "mock Spotify data",
          outcome: "succeeded",
          variant: "tempo320",
          check: async () => {
            const out = await duckSql(
              join(s.local, "warehouse.duckdb"),
              "select count(*) from raw.top_tracks where tempo > 300 or tempo <= 0",
            );
            return out === "[(0,)]" ? [] : [`out-of-range tempo loaded: ${out}`];
          },
        });
      },
    );

    // ---------------------------------------------------------------- storage (local)
    const lake = join(s.local, "lake");
    const unshare = await canUnshareMounts();
    await t.step(
      `storage: the lake folder not writable (${
        unshare ? "read-only mount" : "a file in the way"
      }) stops with exit 4, then resumes`,
      async () => {
        const blocker = join(lake, "top_tracks");
        let moved = "";
        await failThenResume(s, {
          id: "lake-not-writable",
          category: "storage",
          fault: "the lake folder cannot be written",
          injected: unshare
            ? "read-only bind mount of the lake folder, in the child's own mount namespace"
            : "a file where the lake's top_tracks folder should be",
          step: "upload",
          exit: EXIT.storage,
          cause: unshare ? /Read-only file system/ : /Cannot write .* to the lake folder/,
          wrap: unshare ? readOnlyMountWrap(lake) : undefined,
          inject: async () => {
            if (!unshare) {
              moved = `${blocker}.moved`;
              await Deno.rename(blocker, moved);
              await Deno.writeTextFile(blocker, "in the way");
            }
          },
          heal: async () => {
            if (moved) {
              await Deno.remove(blocker);
              await Deno.rename(moved, blocker);
            }
          },
          notes: unshare
            ? "root ignores permission bits, not a read-only mount (EROFS)"
            : "no private mount namespace here: a file in the way of the folder",
        });
      },
    );

    if (unshare) {
      await t.step(
        "storage: no space left on the lake's disk stops upload with exit 4 naming the folder, then resumes",
        async () => {
          await failThenResume(s, {
            id: "lake-disk-full",
            category: "storage",
            fault: "no space left on the device holding the lake folder (ENOSPC)",
            injected:
              "a full 64 KiB tmpfs over the lake folder, in the child's own mount namespace",
            step: "upload",
            exit: EXIT.storage,
            cause: new RegExp(`No space left on the device holding ${lake.replaceAll(".", "\\.")}`),
            wrap: fullDiskMountWrap(lake),
          });
        },
      );
    }

    // ---------------------------------------------------------------- warehouse (local)
    await t.step(
      "warehouse: the DuckDB file held by another process stops with exit 4 naming it, then resumes",
      async () => {
        let holder: Awaited<ReturnType<typeof holdDuckDb>> | undefined;
        const db = join(s.local, "warehouse.duckdb");
        try {
          await failThenResume(s, {
            id: "duckdb-locked",
            category: "warehouse",
            fault: "warehouse.duckdb held open by another process",
            injected: "a Python duckdb process holding the file",
            step: "load",
            exit: EXIT.storage,
            cause: new RegExp(db.replaceAll(".", "\\.")),
            inject: async () => {
              holder = await holdDuckDb(db);
            },
            heal: async () => {
              await holder?.release();
              holder = undefined;
            },
          });
        } finally {
          await holder?.release();
        }
      },
    );

    // ---------------------------------------------------------------- process: SIGKILL in each step
    // FAULTS_NO_SHIM=1 exercises the polling fallback (machines without a C compiler)
    const shim = Deno.env.get("FAULTS_NO_SHIM") ? undefined : await compileKillShim(root);
    for (const kill of KILLS.filter((k) => k.step !== "transform")) {
      await t.step(
        `process: SIGKILL during ${kill.step} (${kill.point.what}), then --resume`,
        async () => {
          await killDuring(s, kill, shim);
        },
      );
    }

    // ---------------------------------------------------------------- dbt
    await t.step(
      "dbt: dbt missing from the venv stops transform with exit 5, then resumes",
      async () => {
        const broken = join(root, "broken-venv");
        await Deno.mkdir(join(broken, "bin"), { recursive: true });
        await Deno.symlink(join(ROOT, ".venv", "bin", "python"), join(broken, "bin", "python"));
        const req = join(ROOT, "dbt", "requirements.lock");
        const hash = await sha256(await Deno.readFile(req));
        await Deno.writeTextFile(join(broken, ".requirements.sha256"), `${hash}  ${req}\n`);
        await failThenResumeTransform(s, {
          id: "dbt-missing",
          category: "dbt",
          fault: "the venv has Python but no dbt",
          injected: "DBT_VENV_DIR pointed at a venv without dbt",
          exit: EXIT.dbt,
          cause: /dbt is not installed in the venv/,
          env: { DBT_VENV_DIR: broken },
          resumeEnv: {},
        });
      },
    );

    await t.step(
      "dbt: a failing dbt test stops transform with exit 5 naming it; the bad load removed, --resume",
      async () => {
        const db = join(s.local, "warehouse.duckdb");
        await failThenResumeTransform(s, {
          id: "dbt-test-fails",
          category: "dbt",
          fault: "a row with danceability 1.7 in the raw table (a load made by hand)",
          injected: "bad row inserted into raw.top_tracks by another process",
          exit: EXIT.dbt,
          cause:
            /dbt build failed: test accepted_range_stg_spotify__top_tracks_danceability.* failed \(1 failing row\)/,
          inject: () =>
            duckSql(
              db,
              `insert into raw.top_tracks (snapshot_date, time_range, rank, track_id, track_name,
               artist_ids, artist_names, duration_ms, explicit, fetched_at, run_id, danceability,
               features_source, match_method, source_file, loaded_at)
             values (date '2027-01-01', 'short_term', 1, 'BadRowTrack00000000000', 'Bad row',
               ['a'], ['A'], 1000, false, now(), 'by-hand', 1.7, 'csv', 'id', 'by-hand.parquet', now())`,
            ),
          heal: () => duckSql(db, "delete from raw.top_tracks where run_id = 'by-hand'"),
          notes: "recovery: the bad load deleted from raw.top_tracks, then --resume",
        });
      },
    );

    for (const kill of KILLS.filter((k) => k.step === "transform")) {
      await t.step(
        `process: SIGKILL during transform (${kill.point.what}), then --resume`,
        async () => {
          await killDuring(s, kill, shim);
        },
      );
    }

    await t.step("re-running a finished day loads nothing new and changes no model", async () => {
      const started = performance.now();
      const day = s.days.find((d) => d.variant === "default")!;
      const db = join(s.local, "warehouse.duckdb");
      const before = await duckCounts(db, { models: true });
      sources.setDay("default");
      const r = await s.pipeline(["--date", day.date], {}, { label: "re-run a finished day" });
      const problems = checkSuccess(r);
      const m = await latestManifest(s.local);
      if (m?.steps.upload?.counts?.files_skipped !== 1) problems.push("upload was not skipped");
      if (m?.steps.load?.counts?.files_skipped !== 1) problems.push("load was not skipped");
      const after = await duckCounts(db, { models: true });
      for (
        const k of [
          "raw",
          "top_tracks",
          "audio_features",
          "inter_top_weekly_audio_features",
        ] as const
      ) {
        if (after[k] !== before[k]) problems.push(`${k}: ${before[k]} → ${after[k]}`);
      }
      s.record({
        id: "rerun-finished-day",
        category: "process",
        fault: `the pipeline run again for a finished day (${day.date})`,
        injected: "a second run",
        outcome: "succeeded",
        exit_code: r.code,
        resumed: null,
        snapshot_date: day.date,
        seconds: round((performance.now() - started) / 1000),
      }, problems);
    });

    // ---------------------------------------------------------------- HTTP trigger
    await httpCases(t, s);

    // ---------------------------------------------------------------- final state vs a clean run
    await t.step(
      "final state equals a clean run of the same days (row counts in every model)",
      async () => {
        // the last partial run (stopped at load) gets its transform: every day is built
        const r = await s.pipeline(["--resume"], {}, {
          label: "final transform",
          timeoutMs: 180_000,
        });
        const problems = checkSuccess(r);
        const faulty = await duckCounts(join(s.local, "warehouse.duckdb"), { models: true });
        const clean = await baseline(s);
        const cmp = compare(faulty, clean);
        problems.push(...cmp.problems);
        s.rowsLost += cmp.lost;
        s.rowsDuplicated += cmp.duplicated;
        figures.counts = { faulty: summary(faulty), clean: summary(clean) };
        // per case: its day's rows in top_tracks equal the clean run's
        for (const res of s.results) {
          if (res.resumed === true && res.snapshot_date) {
            const want = clean.topTracksByDay[res.snapshot_date] ?? 0;
            const got = faulty.topTracksByDay[res.snapshot_date] ?? 0;
            if (want !== got) {
              res.resumed = false;
              problems.push(
                `${res.id}: top_tracks rows of ${res.snapshot_date} ${got} ≠ clean ${want}`,
              );
            }
          }
        }
        if (problems.length) throw new Error(problems.join("; "));
      },
    );

    // ---------------------------------------------------------------- prod: S3 and Snowflake
    await prodCases(t, s);
  } finally {
    await sources.close();
    await report(s);
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
});

/** Figures beyond the per-case results. */
const figures: {
  secretsLeaked: number;
  leaks: string[];
  scanned: { transcripts: number; bytes: number };
  counts?: Record<string, Record<string, number>>;
} = {
  secretsLeaked: 0,
  leaks: [],
  scanned: { transcripts: 0, bytes: 0 },
};

function summary(c: WarehouseCounts): Record<string, number> {
  return {
    "raw.top_tracks (latest load per day)": Object.values(c.rawLatestByDay).reduce(
      (a, b) => a + b,
      0,
    ),
    top_tracks: c.top_tracks,
    audio_features: c.audio_features,
    inter_top_weekly_audio_features: c.inter_top_weekly_audio_features,
  };
}

/** Rows lost / duplicated between the faulty warehouse and the clean one. */
function compare(faulty: WarehouseCounts, clean: WarehouseCounts) {
  const problems: string[] = [];
  let lost = 0;
  let duplicated = faulty.rawDuplicates + faulty.topTracksDuplicates + faulty.rawUnaccounted +
    faulty.filesLoadedTwice;
  const days = new Set([
    ...Object.keys(clean.rawLatestByDay),
    ...Object.keys(faulty.rawLatestByDay),
  ]);
  for (const day of days) {
    for (
      const [name, f, c] of [
        ["raw", faulty.rawLatestByDay[day] ?? 0, clean.rawLatestByDay[day] ?? 0],
        ["top_tracks", faulty.topTracksByDay[day] ?? 0, clean.topTracksByDay[day] ?? 0],
      ] as const
    ) {
      if (f < c) lost += c - f;
      if (f > c) duplicated += f - c;
      if (f !== c) problems.push(`${name} ${day}: ${f} rows, clean ${c}`);
    }
  }
  for (const name of ["audio_features", "inter_top_weekly_audio_features"] as const) {
    const f = faulty[name];
    const c = clean[name];
    if (f < c) lost += c - f;
    if (f > c) duplicated += f - c;
    if (f !== c) problems.push(`${name}: ${f} rows, clean ${c}`);
  }
  if (faulty.topTracksDuplicates) {
    problems.push(`${faulty.topTracksDuplicates} duplicate keys in top_tracks`);
  }
  if (faulty.rawDuplicates) problems.push(`${faulty.rawDuplicates} duplicated rows in raw`);
  return { lost, duplicated, problems };
}

/** The same days, each loaded once without faults, then one transform: the clean final state. */
async function baseline(s: Suite): Promise<WarehouseCounts> {
  const dir = join(s.root, "baseline");
  await s.sources.writeTokens(dir);
  const config = loadConfig({ env: s.sources.env(dir), envFile: false });
  const { log } = testLog();
  for (const day of s.days) {
    s.sources.setDay(day.variant);
    await runPipeline(config, { log, date: day.date, to: "load" });
  }
  s.sources.setDay("default");
  await runPipeline(config, { log, resume: true });
  return await duckCounts(join(dir, "warehouse.duckdb"), { models: true });
}

/** A fault in transform: the run stops at transform; the resume redoes only transform. */
function failThenResumeTransform(s: Suite, c: Omit<FailureCase, "step">): Promise<void> {
  return failThenResume(s, { ...c, step: "transform" });
}

/** Where a SIGKILL lands. */
type KillPoint =
  /** The LD_PRELOAD shim kills the process as it renames a file into a path with this suffix. */
  | { kind: "rename"; suffix: (date: string) => string; what: string }
  /** strace kills it at its first write to this file (relative to the data folder). */
  | { kind: "strace-write"; file: string; what: string }
  /** The test kills it while the manifest shows the step running (and `ready` holds). */
  | { kind: "poll"; what: string };

/** The SIGKILL cases: each step, at a point inside it. */
const KILLS: { id: string; step: StepName; point: KillPoint }[] = [
  {
    id: "sigkill-fetch",
    step: "fetch",
    point: {
      kind: "rename",
      suffix: () => "/fetch/raw/short_term_50.json",
      what: "after fetch saved the first page, as the second page is put in place",
    },
  },
  {
    id: "sigkill-enrich",
    step: "enrich",
    point: {
      kind: "rename",
      suffix: () => "/enrich/coverage.json",
      what: "after enrich/tracks.json is in place, as coverage.json would be",
    },
  },
  {
    id: "sigkill-write",
    step: "write",
    point: {
      kind: "rename",
      suffix: () => "/top_tracks.parquet",
      what: "as the Parquet file (complete in its temp file) would be renamed into place",
    },
  },
  {
    id: "sigkill-upload",
    step: "upload",
    point: {
      kind: "rename",
      suffix: (date) => `/snapshot_date=${date}/top_tracks.parquet.meta.json`,
      what: "after the lake object is in place, before its sidecar and the receipt",
    },
  },
  {
    id: "sigkill-load-commit",
    step: "load",
    point: {
      kind: "strace-write",
      file: "warehouse.duckdb.wal",
      what: "at DuckDB's first WAL write: in the middle of the load's COMMIT",
    },
  },
  {
    id: "sigkill-load-report",
    step: "load",
    point: {
      kind: "rename",
      suffix: () => "/load/report.json",
      what: "after the load committed, before load/report.json and the manifest say so",
    },
  },
  {
    id: "sigkill-transform-dbt",
    step: "transform",
    point: { kind: "poll", what: "while dbt builds the models (manifest: transform running)" },
  },
  {
    id: "sigkill-transform-summary",
    step: "transform",
    point: {
      kind: "rename",
      suffix: () => "/transform/run_results.json",
      what: "after dbt finished, before its summary and the manifest say so",
    },
  },
];

let straceChecked: boolean | undefined;
async function hasStrace(): Promise<boolean> {
  if (straceChecked === undefined) {
    try {
      straceChecked = (await new Deno.Command("strace", {
        args: ["-V"],
        stdout: "null",
        stderr: "null",
      }).output()).success;
    } catch {
      straceChecked = false;
    }
  }
  return straceChecked;
}

/**
 * SIGKILL of a child pipeline in the middle of a step, then `--resume`. The kill lands at an exact
 * point where possible: an LD_PRELOAD shim kills the process as it renames a chosen output into
 * place (its temp file complete, the manifest still saying the step runs), strace kills it at
 * DuckDB's first WAL write; without a C compiler or strace, and for dbt itself, the test polls the
 * manifest and kills while it shows the step running.
 */
async function killDuring(
  s: Suite,
  kill: (typeof KILLS)[number],
  shim: string | undefined,
): Promise<void> {
  const { id, step } = kill;
  let point = kill.point;
  if (point.kind === "rename" && !shim) {
    point = {
      kind: "poll",
      what:
        `while the manifest shows ${step} running (polling: the exact point needs a C compiler)`,
    };
  }
  if (point.kind === "strace-write" && !await hasStrace()) {
    point = {
      kind: "poll",
      what: `while the manifest shows ${step} running (polling: the exact point needs strace)`,
    };
  }
  const started = performance.now();
  const date = s.nextDate();
  s.sources.setDay("default");
  const problems: string[] = [];
  const to = step === "transform" ? [] : ["--to", "load"];
  const before = await runIds(s.local);
  let killed: ChildResult;
  if (point.kind === "rename") {
    killed = await s.pipeline(["--date", date, ...to], {
      LD_PRELOAD: shim!,
      FAULT_KILL_ON_RENAME_TO: point.suffix(date),
    }, { label: id, timeoutMs: 180_000 });
  } else if (point.kind === "strace-write") {
    const calls = "write,pwrite64,writev,pwritev,pwritev2";
    killed = await s.pipeline(["--date", date, ...to], {}, {
      label: id,
      wrap: [
        "strace",
        "-f",
        "-qq",
        "-o",
        "/dev/null",
        "-P",
        join(s.local, point.file),
        "-e",
        `trace=${calls}`,
        "-e",
        `inject=${calls}:signal=SIGKILL`,
      ],
    });
  } else {
    if (step === "fetch") s.sources.spotify.fault(TOP_TRACKS, { kind: "slow", delayMs: 1200 });
    if (step === "enrich") {
      s.sources.spotify.fault("/v1/audio-features", { kind: "slow", delayMs: 1200 });
    }
    const child = spawnScript(
      "pipeline.ts",
      ["--date", date, ...to],
      s.localEnv({ HTTP_TIMEOUT_MS: "10000" }),
      { cwd: s.root, transcripts: s.transcripts, label: id, timeoutMs: 180_000 },
    );
    const dir = await waitForStepRunning(s.local, step, { after: before, timeoutMs: 120_000 });
    if (step === "transform") {
      // dbt has started building: its log is being written
      await waitFor(
        async () => (await exists(join(s.local, "dbt", "logs", "dbt.log"))) || undefined,
        { what: "dbt to start" },
      );
      await new Promise((r) => setTimeout(r, 1500));
    }
    void dir;
    child.kill("SIGKILL");
    killed = await child.result;
  }
  const runId = (await runIds(s.local)).filter((i) => !before.includes(i)).at(-1);
  const runDir = join(s.local, "runs", runId ?? "none");
  if (killed.code !== 137) problems.push(`the child was not killed (exit ${killed.code})`);
  const m = await readManifest(runDir);
  const missed = m?.steps[step]?.status !== "running";
  if (missed && kill.point.kind === "rename" && point.kind === "poll") {
    // polling could not catch this step's short window: say so instead of counting a case
    s.notInjected.push(
      `${id}: the kill landed after ${step} (${
        m?.steps[step]?.status
      }); without a C compiler the exact point cannot be reached`,
    );
  } else if (missed) {
    problems.push(`after the kill, ${step} is ${m?.steps[step]?.status} (not killed during it)`);
  }
  const lockLeft = await exists(join(s.local, "pipeline.lock"));
  const leftBehind = await tempFiles(join(runDir, step));
  s.sources.setDay("default");
  let resumed = await s.pipeline(["--resume", ...to], {}, {
    label: `${id} (--resume)`,
    timeoutMs: 180_000,
  });
  const tookOver = logLines(resumed.stderr).some((l) => /Took over a stale lock/.test(l.msg));
  let notes = `temp files left by the kill: ${leftBehind.length}; lock file left: ${lockLeft}`;
  if (step === "transform" && resumed.code === EXIT.dbt) {
    // SIGKILL of the pipeline leaves its dbt child running (nothing kills a process's children
    // when it is SIGKILLed); while that dbt holds the DuckDB file, the resumed dbt cannot open it.
    const err = finalError(resumed.stderr);
    const cause = err?.msg ?? "";
    if (cause.includes("\n")) problems.push(`the first resume's cause spans lines: ${cause}`);
    if (!/let it finish/.test(err?.hint ?? "")) problems.push(`no hint to wait: ${err?.hint}`);
    notes += `; first --resume: exit 5 while the killed run's dbt still held the warehouse (${
      cause.slice(0, 200)
    }), the second succeeded`;
    await waitForOrphanDbt(s.local);
    resumed = await s.pipeline(["--resume", ...to], {}, {
      label: `${id} (second --resume)`,
      timeoutMs: 180_000,
    });
  }
  problems.push(...checkSuccess(resumed));
  if (lockLeft && !tookOver) {
    problems.push("the killed run's lock was not reported as taken over");
  }
  const skipped = verifiedSkips(resumed);
  const earlier = STEPS.slice(0, STEPS.indexOf(step));
  if (earlier.some((st) => !skipped.includes(st))) problems.push(`resume skipped only ${skipped}`);
  const leftovers = await tempFiles(join(runDir, step));
  if (leftovers.length) problems.push(`temp files left in ${step}/: ${leftovers}`);
  problems.push(...await s.checkDay(date, "default"));
  s.days.push({ date, caseId: id, variant: "default" });
  if (missed && problems.length === 0 && s.notInjected.at(-1)?.startsWith(`${id}:`)) return;
  s.recordFailure(
    {
      id,
      category: "process",
      fault: `SIGKILL during ${step}`,
      injected: `${
        point.kind === "rename"
          ? "LD_PRELOAD shim: SIGKILL"
          : point.kind === "strace-write"
          ? "strace: SIGKILL"
          : "SIGKILL"
      } ${point.what}`,
    },
    {
      exit_code: killed.code,
      cause: "killed (SIGKILL): no error line; the manifest shows the step running",
      recovery: "--resume (stale lock taken over, finished steps verified)",
      snapshot_date: date,
      notes,
    },
    started,
    problems,
  );
}

/**
 * A SIGKILL of the pipeline does not kill its dbt child (no process group kill): wait until no
 * dbt process of this data folder is left, as an operator would before resuming.
 */
async function waitForOrphanDbt(dataDir: string): Promise<void> {
  await waitFor(async () => {
    for await (const e of Deno.readDir("/proc")) {
      if (!/^\d+$/.test(e.name)) continue;
      const cmd = await Deno.readTextFile(`/proc/${e.name}/cmdline`).catch(() => "");
      if (cmd.includes("dbt") && cmd.includes(dataDir)) return undefined;
    }
    return true;
  }, { timeoutMs: 120_000, intervalMs: 200, what: "the orphaned dbt to finish" });
}

async function tempFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      if (e.isDirectory) await walk(join(d, e.name));
      else if (e.name.endsWith(".tmp")) out.push(e.name);
    }
  };
  await walk(dir).catch(() => {});
  return out;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function sha256(data: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Scans everything for secrets, prints the figures table and writes results.json. */
async function report(s: Suite): Promise<void> {
  const files: Transcript[] = [];
  await collectFiles(
    s.root,
    files,
    (p) =>
      p.endsWith("spotify_tokens.json") || p.endsWith(".p8") || p.includes("/catalog/") ||
      p.includes("/broken-venv"),
  );
  const all = [...s.transcripts, ...files];
  const needles = secretNeedles(s.secrets);
  for (const t of all) {
    for (const n of needles) {
      if (n.value.length >= 6 && t.text.includes(n.value)) {
        figures.leaks.push(`${n.name} in ${t.label}`);
      }
    }
  }
  figures.secretsLeaked = figures.leaks.length;
  figures.scanned = {
    transcripts: all.length,
    bytes: all.reduce((n, t) => n + t.text.length, 0),
  };
  const r = s.results;
  const table = {
    "faults injected": r.length,
    ...(s.notInjected.length ? { "not injected (see not_injected)": s.notInjected.length } : {}),
    "recovered by retry": r.filter((x) => x.outcome === "retried").length,
    "clean failures (documented exit code, one-line cause)":
      r.filter((x) => x.outcome === "clean failure").length,
    "degraded (succeeded with a warning)": r.filter((x) => x.outcome === "degraded").length,
    "resumed to the clean final state": r.filter((x) => x.resumed === true).length,
    "rows lost": s.rowsLost,
    "rows duplicated": s.rowsDuplicated,
    "secrets leaked": figures.secretsLeaked,
  };
  const lines = [
    "",
    "Fault suite",
    ...Object.entries(table).map(([k, v]) => `  ${k.padEnd(56)} ${String(v).padStart(5)}`),
    "",
    ...r.map((x) =>
      `  ${x.id.padEnd(26)} ${x.outcome.padEnd(14)} exit ${String(x.exit_code).padEnd(4)}` +
      `${x.resumed === true ? "resumed" : x.resumed === false ? "NOT RESUMED" : "-"}  ${
        x.cause ?? ""
      }`.slice(0, 200)
    ),
    ...(figures.leaks.length ? ["", "LEAKS:", ...figures.leaks.map((l) => `  ${l}`)] : []),
  ];
  console.log(lines.join("\n"));
  await Deno.mkdir(join(ROOT, ".data", "faults"), { recursive: true });
  await Deno.writeTextFile(
    RESULTS_FILE,
    JSON.stringify(
      {
        generated_at: new Date().toISOString(),
        table,
        figures,
        not_injected: s.notInjected,
        cases: r,
      },
      null,
      2,
    ) +
      "\n",
  );
  if (figures.secretsLeaked) throw new Error(`secrets leaked: ${figures.leaks.join("; ")}`);
}
