import assert from "node:assert/strict";
import { Logger, type LogRecord, printable, redact } from "../lib/log.ts";

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

Deno.test("printable() makes terminal escapes, CR, NUL and bidi controls visible; pretty log lines stay one line", () => {
  const evil = "Song\x1b[2J\x1b]0;pwned\x07\rName\x00\u202eevil\u2066";
  const shown = printable(`${evil}\nnext\tline`);
  // deno-lint-ignore no-control-regex
  assert.ok(!/[\x00-\x08\x0b-\x1f\x7f\u202e\u2066]/.test(shown), shown);
  assert.equal(shown.split("\n").length, 2, "line breaks between lines stay");
  assert.ok(shown.includes("\\u001b[2J") && shown.includes("\\u000d") && shown.includes("\\u202e"));
  assert.ok(shown.includes("\t"), "tabs stay");
  assert.equal(printable("a\nb", { keepNewlines: false }), "a\\u000ab");

  const lines: string[] = [];
  const log = new Logger({ format: "pretty", level: "info", sink: (_r, line) => lines.push(line) });
  log.info(`Matched "${evil}\nsecond line"`, { name: evil });
  assert.equal(lines.length, 1);
  // deno-lint-ignore no-control-regex
  assert.ok(!/[\x00-\x1f\u202e]/.test(lines[0]!), lines[0]);
});
