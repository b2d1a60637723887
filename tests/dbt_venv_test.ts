/**
 * The managed Python venv: created once with the machine's python3, uv installed from the lock
 * (hashes required) and the venv synced with it, reused while the recorded lock hashes match,
 * synced again when a lock changes, and clear errors for a missing or too-old Python, a missing
 * lock or one without uv. The lock used is uv's own entry of `dbt/requirements.lock`, so the
 * sync has nothing else to fetch.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { ConfigError } from "../lib/errors.ts";
import { compileArgs, ensureVenv, LOCKS, REQUIREMENTS_MARKER, uvEntry } from "../lib/dbt/venv.ts";
import { Logger } from "../lib/log.ts";

const ROOT = fromFileUrl(new URL("..", import.meta.url));

function testLogger(lines: string[]): Logger {
  return new Logger({ format: "pretty", level: "debug", sink: (_r, line) => lines.push(line) });
}

Deno.test("ensureVenv() creates the venv once, reuses it without running Python, syncs again when the lock changes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "venv_test_" });
  try {
    const venvDir = join(dir, ".venv");
    const requirements = join(dir, "requirements.lock");
    const uv = uvEntry(await Deno.readTextFile(join(ROOT, LOCKS.dbt.lock)));
    assert.ok(uv?.startsWith("uv=="), "dbt/requirements.lock pins uv");
    await Deno.writeTextFile(requirements, `# only the installer\n${uv}`);
    const lines: string[] = [];
    const log = testLogger(lines);

    // two callers at once (a pipeline and the tests): one creates, the other waits and reuses
    const [a, b] = await Promise.all([
      ensureVenv({ venvDir, python: "python3" }, { log, locks: [requirements] }),
      ensureVenv({ venvDir, python: "python3" }, { log, locks: [requirements] }),
    ]);
    assert.deepEqual([a.created, b.created].sort(), [false, true], lines.join("\n"));
    assert.deepEqual([a.installed, b.installed].sort(), [false, true]);
    assert.equal(a.python, join(venvDir, "bin", "python"));
    const marker = await Deno.readTextFile(join(venvDir, REQUIREMENTS_MARKER));
    assert.match(marker, new RegExp(`^[0-9a-f]{64}  ${requirements}\\n$`));
    assert.ok(
      lines.some((l) => /venv: installed uv==\S+ \(from the lock, hashes checked\)/.test(l)),
    );
    assert.ok(lines.some((l) => l.includes("uv: ")), lines.join("\n"));
    assert.ok(await Deno.stat(join(venvDir, "bin", "uv")));

    // reuse: no Python is run at all (a missing DBT_PYTHON does not matter)
    lines.length = 0;
    const again = await ensureVenv(
      { venvDir, python: join(dir, "no-such-python") },
      { log, locks: [requirements] },
    );
    assert.deepEqual([again.created, again.installed], [false, false]);
    assert.ok(!lines.some((l) => l.includes("uv:") || l.includes("pip:")), lines.join("\n"));

    // a changed lock: uv syncs again in the same venv (uv is there: no pip)
    lines.length = 0;
    await Deno.writeTextFile(requirements, `# pins changed\n${uv}`);
    const changed = await ensureVenv(
      { venvDir, python: "python3" },
      { log, locks: [requirements] },
    );
    assert.deepEqual([changed.created, changed.installed], [false, true]);
    assert.ok(!lines.some((l) => l.includes("venv: installed uv")), lines.join("\n"));
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
        locks: [requirements],
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
        locks: [requirements],
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

Deno.test("ensureVenv() names a missing lock", async () => {
  const dir = await Deno.makeTempDir({ prefix: "venv_test_" });
  try {
    await assert.rejects(
      ensureVenv({ venvDir: join(dir, ".venv"), python: "python3" }, {
        log: testLogger([]),
        locks: [join(dir, "missing.lock")],
      }),
      /Lock file not found: ".*missing\.lock"/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ensureVenv() refuses a lock that does not pin uv, naming it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "venv_test_" });
  try {
    const lock = join(dir, "requirements.lock");
    await Deno.writeTextFile(lock, "six==1.17.0 \\\n    --hash=sha256:" + "0".repeat(64) + "\n");
    await assert.rejects(
      ensureVenv({ venvDir: join(dir, ".venv"), python: "python3" }, {
        log: testLogger([]),
        locks: [lock],
      }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, /No lock pins uv \(expected a "uv==<version>" entry/);
        assert.ok(error.message.includes(lock));
        return true;
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** `name==version` of every entry of a lock, and whether each has hashes. */
function lockPins(text: string): Map<string, { version: string; hashed: boolean }> {
  const out = new Map<string, { version: string; hashed: boolean }>();
  for (
    const m of text.matchAll(
      /^([A-Za-z0-9._-]+(?:\[[^\]]+\])?)==([^\s;\\]+)(?: *;[^\\\n]*)?((?:[ \t]*\\\n[ \t]+--hash=\S+)*)/gm,
    )
  ) {
    out.set(m[1]!.toLowerCase().replace(/\[.*\]$/, ""), {
      version: m[2]!,
      hashed: m[3]!.includes("--hash=sha256:"),
    });
  }
  return out;
}

Deno.test("the locks are what `deno task lock` compiles: every pin locked, hashed, and dbt's versions in the tests' lock", async () => {
  const locks = new Map<string, Map<string, { version: string; hashed: boolean }>>();
  for (const spec of [LOCKS.dbt, LOCKS.tests]) {
    const text = await Deno.readTextFile(join(ROOT, spec.lock));
    // the header names the command: the same as compileArgs (one place for it)
    assert.ok(
      text.includes(`#    uv ${compileArgs(spec).join(" ")}\n`),
      `${spec.lock} was compiled by another command than \`deno task lock\``,
    );
    const pins = lockPins(text);
    assert.ok(pins.size > 20, `${spec.lock}: ${pins.size} entries`);
    for (const [name, pin] of pins) assert.ok(pin.hashed, `${spec.lock}: ${name} has no hash`);
    for (const input of spec.inputs) {
      const wanted = (await Deno.readTextFile(join(ROOT, input))).matchAll(
        /^([A-Za-z0-9._-]+)(?:\[[^\]]+\])?==(\S+)/gm,
      );
      for (const [, name, version] of wanted) {
        assert.equal(pins.get(name!.toLowerCase())?.version, version, `${spec.lock}: ${name}`);
      }
    }
    locks.set(spec.lock, pins);
  }
  const tests = locks.get(LOCKS.tests.lock)!;
  for (const [name, pin] of locks.get(LOCKS.dbt.lock)!) {
    assert.equal(tests.get(name)?.version, pin.version, `${name} differs between the locks`);
  }
});
