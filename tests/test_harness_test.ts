/**
 * The test harness (`deno task test` → scripts/test.ts): how it reads deno test's summary and
 * which arguments it passes on.
 */
import assert from "node:assert/strict";
import { parseTestSummary, testArgs } from "../scripts/test.ts";

Deno.test("parseTestSummary() reads deno test's final line, coloured or not, with steps and filters", () => {
  assert.deepEqual(parseTestSummary("ok | 12 passed (3 steps) | 0 failed (2s)\n"), {
    passed: 12,
    failed: 0,
  });
  assert.deepEqual(
    parseTestSummary(
      "\x1b[0m\x1b[31mFAILED\x1b[0m | 10 passed (1 step) | 2 failed (4 steps) | 3 filtered out \x1b[0m\x1b[38;5;245m(25s)\x1b[0m\n\nerror: Test failed\n",
    ),
    { passed: 10, failed: 2 },
  );
  assert.equal(parseTestSummary("error: Type checking failed.\n"), undefined);
});

Deno.test("testArgs() runs tests/ unless test files are named, and passes flags with their values", () => {
  const run = testArgs([]);
  assert.deepEqual(run.slice(0, 2), ["test", "-A"]);
  assert.match(run.at(-1)!, /\/tests$/);
  const filtered = testArgs(["--filter", "dbt build"]);
  assert.deepEqual(filtered.slice(0, 4), ["test", "-A", "--filter", "dbt build"]);
  assert.match(filtered.at(-1)!, /\/tests$/);
  assert.deepEqual(testArgs(["tests/dbt_test.ts", "--fail-fast"]), [
    "test",
    "-A",
    "tests/dbt_test.ts",
    "--fail-fast",
  ]);
});
