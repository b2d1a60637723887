import assert from "node:assert/strict";
import { Logger, type LogRecord, redact } from "../lib/log.ts";

function capture(format: "json" | "pretty", secrets: string[]) {
  const lines: string[] = [];
  const records: LogRecord[] = [];
  const log = new Logger({
    format,
    secrets,
    sink: (record, line) => {
      records.push(record);
      lines.push(line);
    },
  });
  return { log, lines, records };
}

// A password with a quote and a backslash, a PEM key with line breaks, and a secret ending in a
// backslash (which, matched raw inside the JSON line, would cut an escape in two).
const SECRETS = ['pa"ss\\word1', "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN\n-----END", "xyz12\\"];

Deno.test("secrets with characters JSON escapes are redacted from JSON and pretty log lines", () => {
  for (const format of ["json", "pretty"] as const) {
    const { log, lines, records } = capture(format, SECRETS);
    const child = log.child({ step: "load" });
    child.error(`login failed with ${SECRETS[0]}`, {
      key: SECRETS[1],
      nested: { list: [`x ${SECRETS[2]}"`] },
    });
    assert.equal(lines.length, 1);
    const line = lines[0]!;
    for (const secret of SECRETS) {
      assert.ok(!line.includes(secret), `${format}: raw secret in ${line}`);
      assert.ok(!line.includes(JSON.stringify(secret).slice(1, -1)), `${format}: escaped secret`);
    }
    assert.ok(!line.includes("MIIEvQIBADAN"), line);
    assert.equal(records[0]!.msg, "login failed with [REDACTED]");
    assert.equal(records[0]!.key, "[REDACTED]");
    assert.deepEqual(records[0]!.nested, { list: ['x [REDACTED]"'] });
  }
});

Deno.test("redact() also removes a secret's JSON-escaped form from JSON text", () => {
  const text = JSON.stringify({ error: `bad password ${SECRETS[0]}` }, null, 2);
  const out = redact(text, SECRETS);
  assert.ok(!out.includes("word1"), out);
  assert.deepEqual(JSON.parse(out), { error: "bad password [REDACTED]" });
  // plain secrets as before; short values are ignored
  assert.equal(redact("token abcdef123 and abc", ["abcdef123", "abc"]), "token [REDACTED] and abc");
});
