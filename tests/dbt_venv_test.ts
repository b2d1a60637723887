/**
 * The managed Python venv: created once with the machine's python3, reused while the recorded
 * requirements hashes match, reinstalled when a requirements file changes, and clear errors
 * for a missing or too-old Python. Uses a requirement that is already satisfied in a fresh
 * venv (`pip`), so nothing is downloaded.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError } from "../lib/errors.ts";
import { ensureVenv, REQUIREMENTS_MARKER } from "../lib/dbt/venv.ts";
import { Logger } from "../lib/log.ts";

function testLogger(lines: string[]): Logger {
  return new Logger({ format: "pretty", level: "debug", sink: (_r, line) => lines.push(line) });
}

Deno.test("ensureVenv() creates the venv once, reuses it without running Python, reinstalls when requirements change", async () => {
  const dir = await Deno.makeTempDir({ prefix: "venv_test_" });
  try {
    const venvDir = join(dir, ".venv");
    const requirements = join(dir, "requirements.txt");
    await Deno.writeTextFile(requirements, "# already in every fresh venv\npip\n");
    const lines: string[] = [];
    const log = testLogger(lines);

    // two callers at once (a pipeline and the tests): one creates, the other waits and reuses
    const [a, b] = await Promise.all([
      ensureVenv({ venvDir, python: "python3" }, { log, requirements: [requirements] }),
      ensureVenv({ venvDir, python: "python3" }, { log, requirements: [requirements] }),
    ]);
    assert.deepEqual([a.created, b.created].sort(), [false, true], lines.join("\n"));
    assert.deepEqual([a.installed, b.installed].sort(), [false, true]);
    assert.equal(a.python, join(venvDir, "bin", "python"));
    const marker = await Deno.readTextFile(join(venvDir, REQUIREMENTS_MARKER));
    assert.match(marker, new RegExp(`^[0-9a-f]{64}  ${requirements}\\n$`));
    assert.ok(lines.some((l) => l.includes("pip: Requirement already satisfied: pip")));

    // reuse: no Python is run at all (a missing DBT_PYTHON does not matter)
    lines.length = 0;
    const again = await ensureVenv(
      { venvDir, python: join(dir, "no-such-python") },
      { log, requirements: [requirements] },
    );
    assert.deepEqual([again.created, again.installed], [false, false]);
    assert.ok(!lines.some((l) => l.includes("pip:")), lines.join("\n"));

    // a changed requirements file: pip runs again in the same venv
    await Deno.writeTextFile(requirements, "# pins changed\npip\n");
    const changed = await ensureVenv(
      { venvDir, python: "python3" },
      { log, requirements: [requirements] },
    );
    assert.deepEqual([changed.created, changed.installed], [false, true]);
    assert.notEqual(await Deno.readTextFile(join(venvDir, REQUIREMENTS_MARKER)), marker);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ensureVenv() says which Python is missing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "venv_test_" });
  try {
    const requirements = join(dir, "requirements.txt");
    await Deno.writeTextFile(requirements, "pip\n");
    const python = join(dir, "bin", "python3");
    await assert.rejects(
      ensureVenv({ venvDir: join(dir, ".venv"), python }, {
        log: testLogger([]),
        requirements: [requirements],
      }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(
          error.message,
          /Python not found: DBT_PYTHON=".*bin\/python3" is not an executable/,
        );
        assert.match(error.message, /Python 3\.10 or newer/);
        return true;
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ensureVenv() refuses a Python older than dbt supports", async () => {
  const dir = await Deno.makeTempDir({ prefix: "venv_test_" });
  try {
    const requirements = join(dir, "requirements.txt");
    await Deno.writeTextFile(requirements, "pip\n");
    const python = join(dir, "python3.8");
    await Deno.writeTextFile(python, "#!/bin/sh\necho 3.8.10\n", { mode: 0o755 });
    await assert.rejects(
      ensureVenv({ venvDir: join(dir, ".venv"), python }, {
        log: testLogger([]),
        requirements: [requirements],
      }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(
          error.message,
          /is Python 3\.8\.10; dbt-core 1\.11 needs Python 3\.10 or newer/,
        );
        return true;
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ensureVenv() names a missing requirements file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "venv_test_" });
  try {
    await assert.rejects(
      ensureVenv({ venvDir: join(dir, ".venv"), python: "python3" }, {
        log: testLogger([]),
        requirements: [join(dir, "missing.txt")],
      }),
      /Requirements file not found: ".*missing\.txt"/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
