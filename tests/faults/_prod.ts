/**
 * The fault suite's prod-profile cases (private to `tests/faults/`): the real S3 and Snowflake
 * clients against moto and fakesnow (behind the test-only protocol adapter), with faults injected
 * at their boundary — an HTTP proxy in front of each stand-in that goes down, answers 500 to a
 * multipart part, or holds a statement past the timeout; IAM in a second moto; a staged file
 * corrupted after upload. Each failing run is resumed (or redone from the step named in its hint)
 * and the day's rows in the Snowflake raw table are compared with a clean run's.
 * @module
 */

import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { type Config, loadConfig } from "../../lib/config.ts";
import { exitCodeOf, StorageError } from "../../lib/errors.ts";
import { Logger } from "../../lib/log.ts";
import { openS3Store, type S3StoreConfig } from "../../lib/store/s3.ts";
import { openSnowflakeSession } from "../../lib/warehouse/snowflake_session.ts";
import { type StandIn, startFakesnow, startMoto, withAwsEnv } from "../stand_ins.ts";
import { HttpFaultProxy, runScript, VENV_PYTHON } from "./_harness.ts";
import {
  checkFailure,
  checkSuccess,
  EXIT,
  latestManifest,
  round,
  type Suite,
  TRACKS,
  verifiedSkips,
} from "./_world.ts";

const BUCKET = "fault-lake";
const ACCOUNT = "TESTACCT";
const USER = "PIPELINE_USER";

/** Runs `python -c <code> args...` in the venv (boto3, duckdb); returns stdout. */
async function python(code: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(VENV_PYTHON, { args: ["-c", code, ...args], env }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).trim();
}

const BOTO = `import boto3, json, sys
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
s3 = boto3.client("s3", **kw)
iam = boto3.client("iam", **kw)
`;

/** The prod stand-ins and proxies, and the env of a prod data folder. */
export class Prod {
  readonly s: Suite;
  readonly dir: string;
  moto!: StandIn;
  fakesnow!: StandIn;
  s3!: HttpFaultProxy;
  sf!: HttpFaultProxy;
  #started: StandIn[] = [];

  constructor(s: Suite) {
    this.s = s;
    this.dir = join(s.root, "prod");
  }

  async start(): Promise<void> {
    this.moto = await startMoto();
    this.#started.push(this.moto);
    this.fakesnow = await startFakesnow({
      s3Endpoint: this.moto.url,
      accounts: [ACCOUNT],
      publicKeys: { [USER]: this.s.secrets.publicKeyPem },
    });
    this.#started.push(this.fakesnow);
    this.s3 = new HttpFaultProxy(this.moto.url);
    this.sf = new HttpFaultProxy(this.fakesnow.url);
    this.s3.up();
    this.sf.up();
    await python(BOTO + `s3.create_bucket(Bucket=sys.argv[2])`, [this.moto.url, BUCKET]);
    await this.s.sources.writeTokens(this.dir);
  }

  /** Env of the prod data folder: S3 through the S3 proxy, Snowflake through its proxy. */
  env(extra: Record<string, string> = {}, dir = this.dir): Record<string, string> {
    return this.s.sources.env(dir, {
      PIPELINE_PROFILE: "prod",
      S3_BUCKET: BUCKET,
      S3_PREFIX: "lake",
      AWS_REGION: "us-east-1",
      S3_ENDPOINT: this.s3.url,
      S3_FORCE_PATH_STYLE: "true",
      SNOWFLAKE_ACCOUNT: ACCOUNT,
      SNOWFLAKE_USER: USER,
      SNOWFLAKE_HOST: "127.0.0.1",
      SNOWFLAKE_PORT: String(this.sf.port),
      SNOWFLAKE_PROTOCOL: "http",
      SNOWFLAKE_TIMEOUT_SECONDS: "5",
      SNOWFLAKE_AWS_ROLE_ARN: "arn:aws:iam::123456789012:role/snowflake-spotify-reader",
      ...extra,
    });
  }

  config(extra: Record<string, string> = {}): Config {
    return loadConfig({ env: this.env(extra), envFile: false });
  }

  /** Runs a task script on the prod data folder. */
  run(script: string, args: string[], extra: Record<string, string>, label: string, dir?: string) {
    return runScript(script, args, this.env(extra, dir), {
      cwd: this.s.root,
      transcripts: this.s.transcripts,
      label,
      timeoutMs: 120_000,
    });
  }

  /** Rows of a day in Snowflake's raw table, and rows repeating a key within one run. */
  async dayRows(date: string): Promise<{ rows: number; duplicates: number }> {
    const config = this.config();
    if (config.warehouse.kind !== "snowflake") throw new Error("not prod");
    const session = await openSnowflakeSession(config.warehouse, { log: quietLog() });
    try {
      const [row] = await session.execute(
        `SELECT COUNT(*) AS N, COUNT(DISTINCT SNAPSHOT_DATE || '|' || TIME_RANGE || '|' || RANK || '|' || RUN_ID) AS K
           FROM SPOTIFY.RAW.TOP_TRACKS WHERE SNAPSHOT_DATE = ?`,
        [date],
      );
      return { rows: Number(row?.N ?? 0), duplicates: Number(row?.N ?? 0) - Number(row?.K ?? 0) };
    } finally {
      await session.close();
    }
  }

  async checkDay(date: string): Promise<string[]> {
    const { rows, duplicates } = await this.dayRows(date);
    const want = TRACKS * 2;
    const problems: string[] = [];
    if (rows !== want) {
      problems.push(`Snowflake raw rows of ${date}: ${rows}, a clean run loads ${want}`);
    }
    if (duplicates) problems.push(`${duplicates} duplicated rows in Snowflake`);
    this.s.rowsLost += Math.max(0, want - rows);
    this.s.rowsDuplicated += Math.max(0, rows - want - duplicates) + duplicates;
    return problems;
  }

  async close(): Promise<void> {
    await this.s3?.close();
    await this.sf?.close();
    for (const standIn of this.#started.reverse()) await standIn.stop();
  }
}

function quietLog(): Logger {
  return new Logger({ level: "error", format: "json", sink: () => {} });
}

/** A prod fault that fails one step of a run, then a recovery command. */
interface ProdFailure {
  id: string;
  fault: string;
  injected: string;
  category: string;
  step: "upload" | "load";
  exit: number;
  cause: RegExp;
  /** The run's first part, before the fault (default: none, the faulty run starts the day). */
  before?: string[];
  inject: () => Promise<unknown> | void;
  heal: () => Promise<unknown> | void;
  /** Arguments of the recovery (default `--resume --to load`). */
  recovery?: (runId: string) => string[];
  env?: Record<string, string>;
  to?: "upload" | "load";
  notes?: string;
  /** Seconds the failure may take at most (no hang). */
  boundSeconds: number;
}

async function prodFailThenRecover(p: Prod, c: ProdFailure): Promise<void> {
  const s = p.s;
  const started = performance.now();
  const date = s.nextDate();
  s.sources.setDay("default");
  const to = c.to ?? "load";
  const problems: string[] = [];
  let args = ["--date", date, "--to", to];
  if (c.before) {
    const first = await p.run(
      "pipeline.ts",
      ["--date", date, ...c.before],
      c.env ?? {},
      `${c.id} (before)`,
    );
    problems.push(...checkSuccess(first));
    args = ["--resume", "--to", to];
  }
  await c.inject();
  const failed = await p.run("pipeline.ts", args, c.env ?? {}, `${c.id} (fault)`);
  const checked = checkFailure(failed, { exit: c.exit, cause: c.cause });
  problems.push(...checked.problems);
  if (failed.ms > c.boundSeconds * 1000) {
    problems.push(`the failure took ${failed.ms} ms (bound ${c.boundSeconds} s)`);
  }
  const m = await latestManifest(p.dir);
  if (m?.steps[c.step]?.status !== "failed") {
    problems.push(`${c.step} is ${m?.steps[c.step]?.status}`);
  }
  await c.heal();
  const runId = m?.run_id ?? "";
  const recoveryArgs = c.recovery?.(runId) ?? ["--resume", "--to", to];
  const resumed = await p.run("pipeline.ts", recoveryArgs, c.env ?? {}, `${c.id} (recovery)`);
  problems.push(...checkSuccess(resumed));
  if (!c.recovery) {
    const skipped = verifiedSkips(resumed);
    for (const st of ["fetch", "enrich", "write"]) {
      if (!skipped.includes(st as never)) problems.push(`resume did not skip ${st}`);
    }
  }
  if (to === "load") problems.push(...await p.checkDay(date));
  s.recordFailure(
    c,
    {
      exit_code: failed.code,
      cause: checked.cause,
      recovery: recoveryArgs.join(" ").replace(runId, "<id>"),
      snapshot_date: date,
      ...(c.notes ? { notes: `${c.notes}; failed after ${round(failed.ms / 1000)} s` } : {
        notes: `failed after ${round(failed.ms / 1000)} s`,
      }),
    },
    started,
    problems,
  );
}

/** The prod cases, each a step of the suite's test. */
export async function prodCases(t: Deno.TestContext, s: Suite): Promise<void> {
  const p = new Prod(s);
  try {
    await t.step(
      "prod: stand-ins (moto, fakesnow) up; Snowflake setup applied; a clean run loads its day",
      async () => {
        await p.start();
        const setup = await p.run(
          "load.ts",
          ["--setup", "--apply"],
          {},
          "prod load --setup --apply",
        );
        const problems = checkSuccess(setup);
        const date = s.nextDate();
        s.sources.setDay("default");
        const clean = await p.run(
          "pipeline.ts",
          ["--date", date, "--to", "load"],
          {},
          "prod clean run",
        );
        problems.push(...checkSuccess(clean));
        problems.push(...await p.checkDay(date));
        if (problems.length) throw new Error(problems.join("; "));
      },
    );

    await t.step(
      "storage: S3 unreachable stops upload with exit 4 in seconds, then resumes",
      async () => {
        await prodFailThenRecover(p, {
          id: "s3-unreachable",
          category: "storage",
          fault: "the S3 endpoint refuses connections",
          injected: "proxy in front of moto closed (nothing listens on the port)",
          step: "upload",
          exit: EXIT.storage,
          cause: /^Cannot reach S3 at http:\/\/127\.0\.0\.1:\d+ for .*ECONNREFUSED/,
          inject: () => p.s3.down(),
          heal: () => p.s3.up(),
          boundSeconds: 30,
        });
      },
    );

    await t.step(
      "storage: S3 access denied (IAM) stops upload with exit 4 naming the operation, then resumes with allowed keys",
      async () => {
        await accessDenied(p);
      },
    );

    await t.step(
      "storage: a 500 during a multipart upload is retried; 500 on every part fails cleanly, leaves no open upload, and a second put succeeds",
      async () => {
        await multipart500(p);
      },
    );

    await t.step(
      "warehouse: Snowflake stand-in down stops load with exit 4 in seconds, then resumes",
      async () => {
        await prodFailThenRecover(p, {
          id: "snowflake-down",
          category: "warehouse",
          fault: "the Snowflake endpoint refuses connections",
          injected: "proxy in front of fakesnow closed (nothing listens on the port)",
          step: "load",
          exit: EXIT.storage,
          cause: /^Cannot reach Snowflake at /,
          inject: () => p.sf.down(),
          heal: () => p.sf.up(),
          boundSeconds: 30,
        });
      },
    );

    await t.step(
      "warehouse: a COPY error (staged file corrupted) stops load with exit 4 naming the file; --from upload redoes it",
      async () => {
        await prodFailThenRecover(p, {
          id: "snowflake-copy-error",
          category: "warehouse",
          fault: "the staged Parquet file replaced by one whose rank is text",
          injected: "object overwritten in moto after upload (a second writer)",
          step: "load",
          exit: EXIT.storage,
          cause:
            /^COPY INTO SPOTIFY\.RAW\.TOP_TRACKS failed for s3:\/\/fault-lake\/lake\/top_tracks\/user_id=mockuser\/snapshot_date=.*not-a-number/,
          before: ["--to", "upload"],
          inject: async () => {
            const m = await latestManifest(p.dir);
            await corruptObject(
              p,
              `lake/top_tracks/user_id=mockuser/snapshot_date=${
                m!.snapshot_date
              }/top_tracks.parquet`,
            );
          },
          heal: () => {},
          recovery: (id) => ["--run", id, "--from", "upload", "--to", "load"],
          boundSeconds: 60,
          notes:
            "resume alone would COPY the same corrupt object again: the way out is to redo upload (`--run <id> --from upload`); the error's hint only says to check the file's columns",
        });
      },
    );

    await t.step(
      "warehouse: one COPY answered after the driver's HTTP timeout is retried by the driver; the late original loads nothing twice",
      async () => {
        const hold = holdCopies(p, { times: 1, ms: 12_000 });
        const started = performance.now();
        const date = s.nextDate();
        s.sources.setDay("default");
        const r = await p.run("pipeline.ts", ["--date", date, "--to", "load"], {
          SNOWFLAKE_TIMEOUT_SECONDS: "1",
        }, "snowflake-slow-once");
        const problems = checkSuccess(r);
        await hold.settled();
        if (hold.held !== 1 || hold.seen < 2) {
          problems.push(`${hold.seen} COPY requests, ${hold.held} held: the driver did not retry`);
        }
        problems.push(...await p.checkDay(date));
        s.record({
          id: "snowflake-slow-once",
          category: "warehouse",
          fault: "one COPY request answered 12 s late (HTTP timeout 11 s)",
          injected:
            "proxy holds the first COPY request, then forwards it (the server finishes late)",
          outcome: "retried",
          exit_code: r.code,
          resumed: null,
          snapshot_date: date,
          seconds: round((performance.now() - started) / 1000),
          notes:
            "the driver resent the statement; the late original reached the server too and its load metadata skipped the file",
        }, problems);
      },
    );

    await t.step(
      "warehouse: a statement slower than SNOWFLAKE_TIMEOUT_SECONDS (plus grace) stops load with exit 4, then resumes without loading twice",
      async () => {
        let hold: ReturnType<typeof holdCopies> | undefined;
        await prodFailThenRecover(p, {
          id: "snowflake-statement-timeout",
          category: "warehouse",
          fault:
            "every COPY request answered 12 s late (SNOWFLAKE_TIMEOUT_SECONDS=1: client deadline 21 s)",
          injected:
            "proxy holds every COPY request 12 s, then forwards it (the server finishes late)",
          step: "load",
          exit: EXIT.storage,
          cause: /^Snowflake statement did not finish within 1 s: COPY INTO/,
          env: { SNOWFLAKE_TIMEOUT_SECONDS: "1" },
          inject: () => {
            hold = holdCopies(p, { times: 100, ms: 12_000 });
          },
          heal: async () => {
            p.sf.rule = undefined;
            // the held statements reach fakesnow and finish, as a slow server's would
            await hold?.settled();
          },
          boundSeconds: 40,
          notes:
            "the held COPYs reach the server after the client gave up; the resume's COPY finds the file loaded and loads nothing",
        });
      },
    );
  } finally {
    await p.close();
  }
}

/**
 * Holds the next `times` COPY INTO requests to fakesnow for `ms`, then forwards them (a slow
 * server). `settled()` resolves once every held request has been forwarded and answered.
 */
function holdCopies(p: Prod, options: { times: number; ms: number }) {
  const state = { held: 0, seen: 0, pending: 0 };
  let done: () => void = () => {};
  let idle = Promise.resolve();
  p.sf.rule = async (req) => {
    // the driver gzips request bodies
    const body = req.headers.get("content-encoding") === "gzip" ? gunzipSync(req.body) : req.body;
    if (!new TextDecoder().decode(body).includes("COPY INTO")) return undefined;
    state.seen++;
    if (state.held >= options.times) return undefined;
    state.held++;
    if (state.pending++ === 0) idle = new Promise((r) => (done = r));
    await new Promise((r) => setTimeout(r, options.ms));
    // forwarded right after this returns; count it settled once fakesnow had time to answer
    setTimeout(() => {
      if (--state.pending === 0) done();
    }, 1000);
    return undefined;
  };
  return {
    get held() {
      return state.held;
    },
    get seen() {
      return state.seen;
    },
    async settled() {
      await idle;
      p.sf.rule = undefined;
    },
  };
}

/** Overwrites an object in moto with a copy whose `rank` column is text. */
async function corruptObject(p: Prod, key: string): Promise<void> {
  await python(
    BOTO + `import duckdb, tempfile, os
d = tempfile.mkdtemp()
src, bad = os.path.join(d, "a.parquet"), os.path.join(d, "b.parquet")
s3.download_file(sys.argv[2], sys.argv[3], src)
duckdb.sql(f"COPY (SELECT * REPLACE ('not-a-number' AS rank) FROM read_parquet('{src}')) TO '{bad}' (FORMAT parquet)")
s3.upload_file(bad, sys.argv[2], sys.argv[3])
`,
    [p.moto.url, BUCKET, key],
  );
}

/** Access denied by IAM in a second moto that enforces it. */
async function accessDenied(p: Prod): Promise<void> {
  const s = p.s;
  const started = performance.now();
  const moto = await startMoto({ enforceIamAfter: 7 });
  const dir = join(s.root, "prod-iam");
  try {
    const keys = JSON.parse(
      await python(
        BOTO + `
s3.create_bucket(Bucket="locked-lake")
def user(name, actions):
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps({
      "Version": "2012-10-17",
      "Statement": [{"Effect": "Allow", "Resource": "*", "Action": actions}]}))
    k = iam.create_access_key(UserName=name)["AccessKey"]
    return {"id": k["AccessKeyId"], "secret": k["SecretAccessKey"]}
print(json.dumps({
  "reader": user("reader", ["s3:GetObject", "s3:ListBucket", "s3:HeadBucket"]),
  "writer": user("writer", ["s3:*"]),
}))
`,
        [moto.url],
      ),
    ) as Record<"reader" | "writer", { id: string; secret: string }>;
    for (const k of Object.values(keys)) {
      s.secrets.extra.add(k.secret);
      s.secrets.extra.add(k.id);
    }
    await s.sources.writeTokens(dir);
    const date = s.nextDate();
    s.sources.setDay("default");
    const env = (k: { id: string; secret: string }) => ({
      S3_ENDPOINT: moto.url,
      S3_BUCKET: "locked-lake",
      AWS_ACCESS_KEY_ID: k.id,
      AWS_SECRET_ACCESS_KEY: k.secret,
    });
    const failed = await p.run(
      "pipeline.ts",
      ["--date", date, "--to", "upload"],
      env(keys.reader),
      "s3-access-denied (fault)",
      dir,
    );
    const { cause, problems } = checkFailure(failed, {
      exit: EXIT.storage,
      cause:
        /^S3 access denied: PutObject on s3:\/\/locked-lake\/lake\/top_tracks\/user_id=mockuser\/snapshot_date=.* is not allowed/,
    });
    const resumed = await p.run(
      "pipeline.ts",
      ["--resume", "--to", "upload"],
      env(keys.writer),
      "s3-access-denied (--resume)",
      dir,
    );
    problems.push(...checkSuccess(resumed));
    const m = await latestManifest(dir);
    if (m?.steps.upload?.status !== "succeeded") problems.push("upload did not finish on resume");
    const listed = await python(
      `import boto3, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
print(len(s3.list_objects_v2(Bucket="locked-lake").get("Contents", [])))`,
      [moto.url, keys.writer.id, keys.writer.secret],
    );
    if (listed !== "1") {
      problems.push(`${listed} objects in the bucket after the resume, expected 1`);
    }
    s.recordFailure(
      {
        id: "s3-access-denied",
        category: "storage",
        fault: "the AWS credentials may read the bucket but not write it",
        injected: "IAM policy enforced by a second moto (user with s3:GetObject/ListBucket only)",
      },
      {
        exit_code: failed.code,
        cause,
        recovery:
          "--resume with credentials allowed to write (checked: the object is in the bucket)",
        snapshot_date: date,
        notes: "run to upload only: the Snowflake stand-in reads the other moto",
      },
      started,
      problems,
    );
  } finally {
    await moto.stop();
  }
}

/**
 * 500 answers to multipart UploadPart requests, through the S3 store itself: the pipeline's
 * Parquet files are far below S3's 5 MB minimum part size (S3_MULTIPART_THRESHOLD_MB ≥ 5), so
 * the pipeline never goes multipart here; the store gets a 12 MB object instead.
 */
async function multipart500(p: Prod): Promise<void> {
  const s = p.s;
  const config = p.config({ S3_MULTIPART_THRESHOLD_MB: "5" });
  const store = config.store as S3StoreConfig;
  const big = new Uint8Array(12 * 1024 * 1024);
  for (let i = 0; i < big.length; i += 65536) crypto.getRandomValues(big.subarray(i, i + 65536));
  const isPart = (r: { method: string; url: URL }) =>
    r.method === "PUT" && r.url.searchParams.has("partNumber") &&
    r.url.searchParams.has("uploadId");
  const s500 = () =>
    new Response(
      `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>`,
      { status: 500, headers: { "content-type": "application/xml" } },
    );
  await withAwsEnv({
    AWS_ACCESS_KEY_ID: s.secrets.awsAccessKeyId,
    AWS_SECRET_ACCESS_KEY: s.secrets.awsSecretAccessKey,
  }, async () => {
    // once: the SDK retries the part
    {
      const started = performance.now();
      let parts = 0;
      let failedParts = 0;
      p.s3.rule = (r) => {
        if (!isPart(r)) return Promise.resolve(undefined);
        parts++;
        if (parts === 2) {
          failedParts++;
          return Promise.resolve(s500());
        }
        return Promise.resolve(undefined);
      };
      const problems: string[] = [];
      const stored = await openS3Store(store, { log: quietLog() });
      try {
        const receipt = await stored.put("faults/multipart-once.bin", big);
        const head = await stored.head("faults/multipart-once.bin");
        if (head?.sha256 !== receipt.sha256) problems.push("the stored object does not verify");
      } catch (error) {
        problems.push(`put failed: ${(error as Error).message}`);
      } finally {
        await stored.close();
        p.s3.rule = undefined;
      }
      if (failedParts !== 1 || parts < 4) {
        problems.push(`${parts} part requests, ${failedParts} answered 500`);
      }
      s.record({
        id: "s3-500-multipart-part",
        category: "storage",
        fault: "S3 answers 500 to the 2nd UploadPart of a 12 MB multipart upload",
        injected:
          "HTTP proxy in front of moto answering 500 InternalError (S3 store put, see notes)",
        outcome: "retried",
        exit_code: 0,
        resumed: null,
        seconds: round((performance.now() - started) / 1000),
        notes:
          "through the S3 store, not the pipeline: its Parquet files stay far below S3's 5 MB minimum part size",
      }, problems);
    }
    // every time: a clean failure, the multipart upload aborted, then a second put succeeds
    {
      const started = performance.now();
      p.s3.rule = (r) => Promise.resolve(isPart(r) ? s500() : undefined);
      const problems: string[] = [];
      let cause = "";
      let exit = 0;
      const stored = await openS3Store(store, { log: quietLog() });
      try {
        await stored.put("faults/multipart-always.bin", big);
        problems.push("the put succeeded although every part failed");
      } catch (error) {
        exit = exitCodeOf(error);
        cause = (error as Error).message;
        if (!(error instanceof StorageError)) problems.push(`not a StorageError: ${cause}`);
        if (cause.includes("\n")) problems.push("the cause spans lines");
        if (!/faults\/multipart-always\.bin/.test(cause)) {
          problems.push(`the cause does not name the key: ${cause}`);
        }
      } finally {
        p.s3.rule = undefined;
      }
      const open = await python(
        BOTO + `print(len(s3.list_multipart_uploads(Bucket=sys.argv[2]).get("Uploads", [])))`,
        [p.moto.url, BUCKET],
      );
      if (open !== "0") problems.push(`${open} multipart upload(s) left open`);
      try {
        const receipt = await stored.put("faults/multipart-always.bin", big);
        const head = await stored.head("faults/multipart-always.bin");
        if (head?.sha256 !== receipt.sha256) problems.push("the re-put object does not verify");
      } catch (error) {
        problems.push(`the second put failed: ${(error as Error).message}`);
      } finally {
        await stored.close();
      }
      s.transcripts.push({ label: "multipart-always error", text: cause });
      s.recordFailure(
        {
          id: "s3-500-multipart-always",
          category: "storage",
          fault: "S3 answers 500 to every UploadPart of a 12 MB multipart upload",
          injected: "HTTP proxy in front of moto answering 500 InternalError (S3 store put)",
        },
        {
          exit_code: exit,
          cause,
          recovery: "the same put again (no multipart upload left open)",
          notes: "through the S3 store, not the pipeline (see s3-500-multipart-part)",
        },
        started,
        problems,
      );
    }
  });
}
