/**
 * The report page: one self-contained HTML file (inline CSS and SVG, no script, no external
 * request — its Content-Security-Policy forbids them), a section per user, each chart with its
 * title, text alternative and table.
 * @module
 */

import type { Chart, ChartTable } from "./charts.ts";

/** One user's part of the page. */
export interface UserSection {
  user_id: string;
  charts: Chart[];
}

/** Options of {@link reportPage}. */
export interface ReportPageOptions {
  users: UserSection[];
  /** Where the models were read. */
  where: string;
  generatedAt: Date;
}

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;").replaceAll("'", "&#39;");
}

const CSS = `
:root { color-scheme: light; --fg: #1b1b1b; --muted: #5c5c5c; --line: #e3e3e3; --accent: #1db954; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: #fafafa; }
header { padding: 24px 32px 12px; border-bottom: 3px solid var(--accent); background: #fff; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 0; color: var(--muted); }
nav { margin-top: 8px; }
nav a { margin-right: 12px; }
main { max-width: 840px; margin: 0 auto; padding: 8px 16px 48px; }
section.user > h2 { margin: 32px 0 8px; font-size: 20px; }
article.chart { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px; margin: 16px 0; }
article.chart h3 { margin: 0 0 4px; font-size: 17px; }
p.alt { margin: 0 0 8px; color: var(--muted); font-size: 13px; }
p.empty { margin: 12px 0; padding: 12px; background: #f3f7f4; border-left: 4px solid var(--accent); }
figure { margin: 0; }
svg { max-width: 100%; height: auto; }
div.table { overflow-x: auto; }
table { border-collapse: collapse; margin-top: 10px; font-size: 12.5px; font-variant-numeric: tabular-nums; }
caption { text-align: left; color: var(--muted); padding-bottom: 4px; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 10px 3px 0; text-align: left; white-space: nowrap; }
td.n { text-align: right; }
footer { color: var(--muted); font-size: 12px; text-align: center; padding: 24px; }
`;

/** The whole page. */
export function reportPage(options: ReportPageOptions): string {
  const { users, where, generatedAt } = options;
  const several = users.length > 1;
  const nav = several
    ? `<nav aria-label="Users">${
      users.map((u) => `<a href="#user-${anchor(u.user_id)}">${escapeHtml(u.user_id)}</a>`).join("")
    }</nav>`
    : "";
  const body = users.length === 0
    ? `<p class="empty">Nothing in the warehouse yet: run <code>deno task pipeline</code>, then open this report again.</p>`
    : users.map((u) => userSection(u, several)).join("\n");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>Spotify listening report</title>
<style>${CSS}</style>
</head>
<body>
<header>
<h1>Spotify listening report</h1>
<p>Generated ${escapeHtml(generatedAt.toISOString().replace(/\.\d+Z$/, "Z"))} from ${
    escapeHtml(where)
  } · ${users.length} user${users.length === 1 ? "" : "s"}</p>
${nav}
</header>
<main>
${body}
</main>
<footer>Built by spotify-pipeline from the dbt models; times are UTC.</footer>
</body>
</html>
`;
}

function anchor(userId: string): string {
  return userId.replace(/[^A-Za-z0-9_-]/g, "_");
}

function userSection(user: UserSection, several: boolean): string {
  const id = anchor(user.user_id);
  const charts = user.charts.map((c) => chartArticle(c, id)).join("\n");
  return `<section class="user" id="user-${id}" data-user="${escapeHtml(user.user_id)}">
${several ? `<h2>${escapeHtml(user.user_id)}</h2>` : ""}
${charts}
</section>`;
}

function chartArticle(chart: Chart, userAnchor: string): string {
  const id = `${userAnchor}-${chart.id}`;
  const head = `<h3 id="${id}-title">${escapeHtml(chart.title)}</h3>`;
  const table = (chart.note ? `<p class="alt">${escapeHtml(chart.note)}</p>` : "") +
    (chart.table ? tableHtml(chart.table) : "");
  if (chart.svg === undefined) {
    return `<article class="chart" id="${id}" data-chart="${chart.id}" data-marks="0">
${head}
<p class="empty">${inlineCode(chart.empty ?? "Nothing to show yet.")}</p>
${table}
</article>`;
  }
  // the plot's SVG (not its legend's) is labelled by the title, described by the alternative
  const svg = chart.svg.replace(
    /<svg\b(?=[^>]*\bclass="plot-[0-9a-f]+")/,
    `<svg role="img" aria-labelledby="${id}-title" aria-describedby="${id}-alt"`,
  );
  return `<article class="chart" id="${id}" data-chart="${chart.id}" data-marks="${chart.marks}"${
    chart.markLabel ? ` data-mark-label="${chart.markLabel}"` : ""
  }>
${head}
<p class="alt" id="${id}-alt">${escapeHtml(chart.alt)}</p>
${svg}
${table}
</article>`;
}

/** Escaped text with `code` spans shown as code. */
function inlineCode(text: string): string {
  return escapeHtml(text).replace(/`([^`]+)`/g, "<code>$1</code>");
}

function tableHtml(table: ChartTable): string {
  const head = table.columns.map((c) => `<th scope="col">${escapeHtml(c)}</th>`).join("");
  const rows = table.rows.map((row) =>
    `<tr>${
      row.map((v) =>
        typeof v === "number" || /^[-↑↓]?\d[\d.,%]*$/.test(v)
          ? `<td class="n">${escapeHtml(String(v))}</td>`
          : `<td>${escapeHtml(v)}</td>`
      ).join("")
    }</tr>`
  ).join("\n");
  return `<div class="table"><table>
<caption>${escapeHtml(table.caption)}</caption>
<thead><tr>${head}</tr></thead>
<tbody>
${rows}
</tbody>
</table></div>`;
}
