/**
 * Tasks that don't upload or load never load the AWS SDK, snowflake-sdk or DuckDB (~270 ms and
 * ~100 MB together). Proven two ways:
 *
 * - statically: in `deno info --json` of the entry points, following only static (non-dynamic)
 *   imports, none of those packages (nor the modules that wrap them) is reachable;
 * - at run time: V8's own log (`--log-function-events`) records a `script-details` event for every
 *   script it compiles; running `fetch --help` / `enrich --help` compiles none of their files.
 *   A control run that does import them shows the probe sees them.
 */

import assert from "node:assert/strict";
import { PROJECT_ROOT } from "./stand_ins.ts";

/** Packages and modules that must stay out of fetch/enrich. */
const HEAVY: readonly RegExp[] = [
  /@aws-sdk[+/]/,
  /@smithy[+/]/,
  /snowflake-sdk/,
  /@duckdb[+/]/,
  /\/lib\/store\/s3\.ts$/,
  /\/lib\/warehouse\/snowflake(_setup)?\.ts$/,
];

interface InfoDependency {
  specifier: string;
  code?: { specifier: string };
  isDynamic?: boolean;
}
interface InfoModule {
  specifier: string;
  kind: string;
  dependencies?: InfoDependency[];
  npmPackage?: string;
}

/** Modules reachable from `entry` through static imports only. */
async function staticGraph(entry: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: PROJECT_ROOT,
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    roots: string[];
    modules: InfoModule[];
    redirects: Record<string, string>;
  };
  const bySpecifier = new Map(info.modules.map((m) => [m.specifier, m]));
  const resolve = (s: string) => info.redirects[s] ?? s;
  const seen = new Set<string>();
  const queue = info.roots.map(resolve);
  while (queue.length) {
    const specifier = queue.pop()!;
    if (seen.has(specifier)) continue;
    seen.add(specifier);
    const module = bySpecifier.get(specifier);
    for (const dep of module?.dependencies ?? []) {
      if (dep.isDynamic || !dep.code) continue;
      queue.push(resolve(dep.code.specifier));
    }
  }
  return [...seen].map((s) =>
    bySpecifier.get(s)?.npmPackage ? `npm:${bySpecifier.get(s)!.npmPackage}` : s
  );
}

/** URLs of every script V8 compiled while running `deno run -A <args>` in the project root. */
async function compiledScripts(args: string[]): Promise<{ scripts: string[]; code: number }> {
  const logFile = await Deno.makeTempFile({ suffix: ".v8.log" });
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        args[0]!,
        "-A",
        `--v8-flags=--log-function-events,--logfile=${logFile},--no-logfile-per-isolate`,
        ...args.slice(1),
      ],
      cwd: PROJECT_ROOT,
      stdout: "null",
      stderr: "piped",
    }).output();
    const log = await Deno.readTextFile(logFile);
    const scripts = new Set<string>();
    for (const line of log.split("\n")) {
      if (!line.startsWith("script-details,")) continue;
      const url = line.split(",")[2];
      if (url) scripts.add(url);
    }
    return { scripts: [...scripts], code: out.code };
  } finally {
    await Deno.remove(logFile);
  }
}

function heavy(modules: string[]): string[] {
  return modules.filter((m) => HEAVY.some((re) => re.test(m)));
}

for (const entry of ["scripts/fetch.ts", "scripts/enrich.ts"]) {
  Deno.test(`${entry}: no static import path reaches the AWS SDK, snowflake-sdk or DuckDB`, async () => {
    const graph = await staticGraph(entry);
    assert.ok(graph.some((m) => m.endsWith("/lib/cli.ts")), "the graph was read");
    assert.deepEqual(heavy(graph), []);
  });

  Deno.test(`${entry} --help compiles none of the AWS SDK, snowflake-sdk or DuckDB at run time`, async () => {
    const { scripts, code } = await compiledScripts(["run", entry, "--help"]);
    assert.equal(code, 0);
    assert.ok(scripts.some((s) => s.endsWith(`/${entry}`)), "the probe saw the entry point");
    assert.deepEqual(heavy(scripts), []);
  });
}

// The report's charting library and DOM load only when a report is drawn: not at the start of
// any task (serve answers /report from the file), nor of the report task before it draws.
const CHARTS: readonly RegExp[] = [/@observablehq[+/]plot/, /linkedom/];

for (
  const entry of ["scripts/cli.ts", "scripts/serve.ts", "scripts/pipeline.ts", "scripts/report.ts"]
) {
  Deno.test(`${entry}: no static import path reaches the charting library (Plot, linkedom)`, async () => {
    const graph = await staticGraph(entry);
    assert.ok(graph.some((m) => m.endsWith(`/${entry}`)), "the graph was read");
    assert.deepEqual(graph.filter((m) => CHARTS.some((re) => re.test(m))), []);
  });
}

Deno.test("the run-time probe does see the SDKs when they are imported (control)", async () => {
  const { scripts, code } = await compiledScripts([
    "eval",
    'await import("@aws-sdk/client-s3"); await import("snowflake-sdk"); await import("@duckdb/node-api");',
  ]);
  assert.equal(code, 0);
  const found = heavy(scripts).join("\n");
  assert.match(found, /@aws-sdk/);
  assert.match(found, /snowflake-sdk/);
  assert.match(found, /@duckdb/);
});

Deno.test("the static check does see a statically imported SDK wrapper (control)", async () => {
  const graph = await staticGraph("tests/prod_s3_test.ts");
  assert.match(heavy(graph).join("\n"), /\/lib\/store\/s3\.ts$/m);
});
