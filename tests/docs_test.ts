/**
 * The docs and the code agree: the settings table of `docs/settings.md` is the one settings list
 * in code (regenerate with `deno task docs`), every task README's table lists is a task of
 * `deno.json`, and every link between the pages leads to a page that exists.
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { PROJECT_ROOT } from "../lib/config.ts";
import { SETTINGS } from "../lib/settings.ts";
import { settingRow, tableRows } from "../lib/settings_table.ts";

const read = (path: string) => Deno.readTextFileSync(join(PROJECT_ROOT, path));

Deno.test("docs/settings.md lists every setting of lib/config.ts as the code says, in its order", () => {
  const rows = tableRows(read("docs/settings.md"));
  assert.deepEqual(
    rows,
    SETTINGS.map((s) => settingRow(s)),
    "docs/settings.md is not the settings list in code: run `deno task docs`",
  );
});

Deno.test("README's task table names the tasks of deno.json, every one", () => {
  const tasks = Object.keys(JSON.parse(read("deno.json")).tasks as Record<string, string>);
  const readme = read("README.md");
  const table = readme.slice(readme.indexOf("## Tasks"), readme.indexOf("### Exit codes"));
  const listed = [...table.matchAll(/^\| `([\w:-]+)` +\|/gm)].map((m) => m[1]!);
  assert.ok(listed.length > 10, "the task table was not found");
  for (const name of listed) assert.ok(tasks.includes(name), `README lists a task "${name}"`);
  for (const name of tasks) assert.ok(listed.includes(name), `README's table lacks task "${name}"`);
});

Deno.test("every relative link of README and docs/ leads to a file that exists", () => {
  const pages = [
    "README.md",
    ...[...Deno.readDirSync(join(PROJECT_ROOT, "docs"))]
      .filter((e) => e.name.endsWith(".md")).map((e) => `docs/${e.name}`),
  ];
  const broken: string[] = [];
  for (const page of pages) {
    const dir = page.includes("/") ? page.slice(0, page.lastIndexOf("/")) : ".";
    for (const m of read(page).matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)) {
      const target = m[1]!;
      if (/^[a-z]+:/.test(target)) continue; // https:, mailto:
      try {
        Deno.statSync(join(PROJECT_ROOT, dir, target));
      } catch {
        broken.push(`${page} → ${target}`);
      }
    }
  }
  assert.deepEqual(broken, []);
});
