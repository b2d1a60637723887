/**
 * The fetch step: each stream of the run for every account of the run (every authorized one, or
 * `--user`), from the Spotify Web API (source `api`) or from the bundled samples (source
 * `sample`, local profile only: two sample users). Writes the raw pages to `fetch/raw/` (the
 * `default` account's) and `fetch/raw/<account>/`, and each stream's rows, every account's
 * together, to `fetch/<stream file>` ({@link StreamRows}), every row with its user's id.
 *
 * The accounts share one request budget (`lib/spotify/budget.ts`). One account failing — its
 * refresh token expired or revoked, its token store damaged, Spotify refusing it — fails alone:
 * it is recorded in the manifest's `users` with the fix (`deno task auth --user <name>`), the
 * others' data goes on, and the run ends `partial` with the worst failure's exit code. A stream
 * refused for a missing scope stops for that account; the daily quota stops every account.
 * When every account fails, the step fails with the first one's error.
 * @module
 */

import {
  type Account,
  authCommand,
  DEFAULT_ACCOUNT,
  inAccountWords,
  selectAccounts,
} from "../spotify/accounts.ts";
import type { Config } from "../config.ts";
import { ConfigError, ExitCode, exitCodeOf, PipelineError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { UserRecord } from "../run.ts";
import { RequestBudget } from "../spotify/budget.ts";
import { openSpotifyClient } from "../spotify/client.ts";
import { advanceCursor, readCursor } from "../state.ts";
import { newestCursorInKeys } from "../streams/cursor.ts";
import { type FetchedStream, fetchStreams } from "../streams/fetch_streams.ts";
import { type StreamRows, writeStreamRows } from "../streams/handoff.ts";
import { streamDefs } from "../streams/registry.ts";
import type { Row, StreamDef } from "../streams/stream.ts";
import type { StepContext, StepOutcome } from "../steps.ts";

/** One account's fetch. */
interface AccountFetch {
  account: Account;
  userId?: string;
  streams: FetchedStream[];
  error?: unknown;
}

/** Runs the fetch step. */
export async function fetchStep(ctx: StepContext): Promise<StepOutcome> {
  const { config, run, log, signal } = ctx;
  const source = config.spotify.source;
  const accounts = await selectAccounts(config, run.manifest.accounts);
  if (source === "sample") {
    log.warn(
      `Using the bundled sample data (data/: users ${
        accounts.map((a) => a.name).join(", ")
      }), not your Spotify data: no token store at ${config.spotify.tokensFile} nor in ${config.spotify.usersDir} (run \`deno task auth\`) or SPOTIFY_SOURCE=sample`,
    );
    run.warn("fetch used the bundled sample data, not Spotify data");
  }
  const budget = new RequestBudget({ concurrency: config.spotify.concurrency });
  const streams = streamDefs(run.streams);
  const outputs: string[] = [];
  // Every account at once: the budget bounds what reaches Spotify.
  const fetched = await Promise.all(accounts.map(async (account): Promise<AccountFetch> => {
    const userLog = accounts.length > 1 ? log.child({ user: account.name }) : log;
    const rawDir = account.name === DEFAULT_ACCOUNT || accounts.length === 1
      ? "raw"
      : `raw/${account.name}`;
    try {
      let userId = account.sample?.userId;
      let client;
      if (account.tokensFile) {
        client = await openSpotifyClient(config, {
          log: userLog,
          tokensFile: account.tokensFile,
          gate: budget,
        });
        userId = await client.userId({ signal });
      }
      const result = await fetchStreams({
        config,
        log: userLog,
        signal,
        source,
        client,
        userId: userId!,
        sampleDir: account.sample?.dir,
        shared: budget,
        runId: run.id,
        snapshotDate: run.snapshotDate,
        streams,
        cursorOf: (stream, streamLog) =>
          cursorOf(config, stream, userId!, { log: streamLog, runId: run.id }),
        saveRaw: async (name, page) => {
          outputs.push(await run.writeJson("fetch", `${rawDir}/${name}`, page));
        },
      });
      return { account, userId, streams: result };
    } catch (error) {
      if (signal?.aborted) throw error;
      return { account, streams: [], error };
    }
  }));

  // two accounts authorized as the same Spotify user would give every row twice
  const seen = new Map<string, string>();
  for (const f of fetched) {
    if (f.error !== undefined || f.userId === undefined) continue;
    const other = seen.get(f.userId);
    if (other === undefined) seen.set(f.userId, f.account.name);
    else {
      f.error = new ConfigError(
        `accounts ${other} and ${f.account.name} are the same Spotify user (${f.userId}): its data is collected once, as ${other}`,
        { hint: `Remove the second with \`deno task auth --remove ${f.account.name}\`.` },
      );
      f.streams = [];
    }
  }
  const users = userRecords(fetched, log);
  // recorded before anything is thrown: the manifest says who failed, also when everyone did
  run.manifest.users = users;
  const failed = fetched.filter((f) => f.error !== undefined);
  if (failed.length === fetched.length) throw failed[0]!.error;
  for (const [name, u] of Object.entries(users)) {
    if (u.status === "succeeded") continue;
    const message = `user ${name}: ${u.error}${u.hint ? ` — ${u.hint}` : ""}`;
    run.warn(message);
    if (u.status === "failed") log.error(`${message} (the other accounts go on)`, { user: name });
  }

  const ok = fetched.filter((f) => f.error === undefined);
  const counts: Record<string, number> = { rows: 0 };
  for (const stream of streams) {
    const parts = ok.map((f) => ({ f, r: f.streams.find((r) => r.stream === stream)! }));
    const rows: Row[] = parts.flatMap((p) => p.r.rows);
    const skipped = Object.fromEntries(
      parts.filter((p) => p.r.skipped !== undefined).map((p) => [p.f.userId!, p.r.skipped!]),
    );
    // a stopped stream's warning is in its account's record (above)
    for (const p of parts.filter((p) => p.r.skipped === undefined)) {
      for (const w of p.r.warnings) run.warn(prefixed(p.f, ok.length, w));
    }
    const file: StreamRows = {
      stream: stream.name,
      run_id: run.id,
      snapshot_date: run.snapshotDate,
      source,
      users: ok.map((f) => f.userId!),
      ...(Object.keys(skipped).length ? { skipped } : {}),
      rows,
    };
    outputs.push(await writeStreamRows(run, "fetch", stream, file));
    counts.rows! += rows.length;
    counts[`${stream.name}_rows`] = rows.length;
    for (const p of parts) {
      for (const [k, v] of Object.entries(p.r.counts)) {
        counts[`${stream.name}_${k}`] = (counts[`${stream.name}_${k}`] ?? 0) + v;
        if (k === "possible_gap") counts.possible_gap = (counts.possible_gap ?? 0) + v;
      }
    }
  }
  const lines = ok.flatMap((f) =>
    f.streams.map((r) => inAccountWords(f.account.name, prefixed(f, ok.length, r.text)))
  );
  for (const f of failed) {
    lines.push(`user ${f.account.name}: FAILED — ${users[f.account.name]!.error}`);
  }
  if (source === "sample") lines.push("Run `deno task auth` to fetch your own Spotify data.");
  return {
    counts,
    summary: {
      text: lines.join("\n"),
      source,
      streams: run.streams,
      requests: budget.stats,
    },
    outputs,
    users: Object.fromEntries(
      ok.map((f) => [f.userId!, { rows: f.streams.reduce((n, r) => n + r.rows.length, 0) }]),
    ),
  };
}

/** Each account's outcome (failures with their fix, in that account's words). */
function userRecords(fetched: AccountFetch[], log: Logger): Record<string, UserRecord> {
  const out: Record<string, UserRecord> = {};
  for (const f of fetched) {
    const { name } = f.account;
    const fix = (text: string) => inAccountWords(name, text);
    if (f.error !== undefined) {
      const e = f.error;
      const message = fix(log.redact(e instanceof Error ? e.message : String(e)).split("\n")[0]!);
      const hint = e instanceof PipelineError && e.hint ? fix(e.hint) : undefined;
      out[name] = {
        status: "failed",
        error: message,
        exit_code: exitCodeOf(e),
        hint: hint ?? `Check it with \`deno task auth --status\`, then ${authCommand(name)}.`,
        steps: { fetch: { status: "failed", error: message } },
      };
      continue;
    }
    const stopped = f.streams.filter((r) => r.skipped !== undefined);
    const rows = f.streams.reduce((n, r) => n + r.rows.length, 0);
    const error = stopped.length
      ? fix(stopped.map((r) => `${r.stream.name} stopped: ${r.skipped}`).join("; "))
      : undefined;
    out[name] = {
      user_id: f.userId,
      status: stopped.length ? "partial" : "succeeded",
      ...(error
        ? { error, exit_code: ExitCode.source, hint: `Run \`${authCommand(name)}\` to grant it.` }
        : {}),
      steps: { fetch: { status: "succeeded", rows, ...(error ? { error } : {}) } },
    };
  }
  return out;
}

function prefixed(f: AccountFetch, accounts: number, text: string): string {
  return accounts > 1 || f.account.name !== DEFAULT_ACCOUNT
    ? `user ${f.account.name}: ${text}`
    : text;
}

/**
 * The stream's cursor for the user: from the pipeline state, else (state lost, or the first poll
 * after an upgrade) the newest one in the lake's keys, which is then saved as the state.
 */
async function cursorOf(
  config: Config,
  stream: StreamDef,
  userId: string,
  options: { log: Logger; runId: string },
): Promise<string | undefined> {
  const { log } = options;
  const stored = await readCursor(config, stream.name, userId, { log });
  if (stored !== undefined || !stream.cursor) return stored;
  const { openObjectStore } = await import("../store/open.ts");
  let keys: string[];
  try {
    const store = await openObjectStore(config, { log });
    try {
      keys = (await store.list(stream.cursor.lakePrefix(userId))).map((o) => o.key);
    } finally {
      await store.close();
    }
  } catch (error) {
    log.warn(
      `No ${stream.name} cursor in the pipeline state and the lake cannot be listed (${
        (error as Error).message.split("\n")[0]
      }): fetching without one (plays already stored are dropped again by dbt)`,
    );
    return undefined;
  }
  const newest = newestCursorInKeys(stream, keys);
  if (newest !== undefined) {
    log.info(`${stream.name}: cursor recovered from the lake (${keys.length} file(s)): ${newest}`);
    await advanceCursor(config, stream.name, userId, newest, options);
  }
  return newest;
}
