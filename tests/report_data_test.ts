/**
 * The report's data and charts: each chart's input from hand-made model rows in a real DuckDB
 * file (two users; UTC hours and ISO weekdays; a week without features; ranks entering and
 * leaving the top 10; genres of the latest snapshot only), the SVG's marks, and the empty and
 * early states.
 */

import { join } from "node:path";
import { parseHTML } from "linkedom";
import { loadConfig } from "../lib/config.ts";
import { StorageError } from "../lib/errors.ts";
import { UNIT_INTERVAL_FEATURES } from "../lib/features/provider.ts";
import { type Chart, CHART_IDS, renderCharts } from "../lib/report/charts.ts";
import {
  dayWindow,
  genreList,
  heatGrid,
  rankMovement,
  readReportData,
  topGenres,
  type UserReport,
} from "../lib/report/data.ts";
import { openModelReader } from "../lib/report/models.ts";
import { reportPage } from "../lib/report/page.ts";
import { assert, assertEquals, assertRejects, testLog } from "./_spotify_test_util.ts";

const WEEK_COLUMNS = [...UNIT_INTERVAL_FEATURES, "tempo"];

/** A DuckDB file with the models' columns the report reads, and the hand-made rows. */
async function warehouse(dir: string): Promise<string> {
  const path = join(dir, "warehouse.duckdb");
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const db = await DuckDBInstance.create(path);
  const c = await db.connect();
  const means = WEEK_COLUMNS.map((f) => `${f}_mean double`).join(", ");
  for (
    const sql of [
      `create table inter_top_weekly_audio_features (user_id varchar, week_start date,
         iso_year integer, iso_week integer, time_range varchar, snapshot_days integer,
         distinct_tracks integer, tracks_with_features integer, feature_coverage double, ${means})`,
      `insert into inter_top_weekly_audio_features
         (user_id, week_start, iso_year, iso_week, time_range, snapshot_days, distinct_tracks,
          tracks_with_features, feature_coverage, danceability_mean, energy_mean, tempo_mean)
       values ('u1', '2026-11-23', 2026, 48, 'short_term', 1, 4, 2, 0.5, 0.6, 0.7, 120),
              ('u1', '2026-11-30', 2026, 49, 'short_term', 2, 3, 0, 0.0, null, null, null)`,
      `create table top_tracks (user_id varchar, snapshot_date date, time_range varchar,
         rank integer, track_id varchar, track_name varchar, artist_names varchar[])`,
      `insert into top_tracks values
         ('u1', '2026-10-01', 'short_term', 1, 'd', 'D', ['Old']),
         ('u1', '2026-11-29', 'short_term', 1, 'a', 'A', ['X', 'Z']),
         ('u1', '2026-11-29', 'short_term', 2, 'b', 'B', ['Y']),
         ('u1', '2026-11-29', 'short_term', 11, 'c', 'C', ['X']),
         ('u1', '2026-11-30', 'short_term', 1, 'b', 'B', ['Y']),
         ('u1', '2026-11-30', 'short_term', 2, 'c', 'C', ['X']),
         ('u1', '2026-11-30', 'short_term', 12, 'a', 'A', ['X', 'Z']),
         ('u1', '2026-11-30', 'long_term', 1, 'e', 'E', ['X'])`,
      `create table daily_listening (user_id varchar, play_date date, plays integer,
         minutes decimal(18, 2))`,
      `insert into daily_listening values ('u1', '2026-06-01', 5, 10), ('u1', '2026-11-30', 2, 3),
         ('u1', '2026-12-01', 1, 0.5), ('u2', '2026-11-29', 1, 10)`,
      `create table plays (user_id varchar, played_at timestamptz, artist_name varchar,
         ms_played bigint, duration_ms bigint)`,
      // 2026-11-30 is a Monday, 2026-11-29 a Sunday
      `insert into plays values
         ('u1', '2026-11-30 23:30:00+00', 'X', 60000, 200000),
         ('u1', '2026-11-30 23:45:00+00', 'X', null, 120000),
         ('u1', '2026-12-01 00:10:00+00', 'Y', 30000, 180000),
         ('u1', '2026-12-01 00:20:00+00', null, 30000, null),
         ('u2', '2026-11-29 10:00:00+00', 'X', 600000, 600000)`,
      `create table top_artists (user_id varchar, snapshot_date date, time_range varchar,
         artist_id varchar, genres varchar[])`,
      `insert into top_artists values
         ('u1', '2026-11-29', 'short_term', 'a1', ['rock', 'indie']),
         ('u1', '2026-11-29', 'short_term', 'a2', ['rock']),
         ('u1', '2026-11-30', 'short_term', 'a1', ['pop', 'rock']),
         ('u1', '2026-11-30', 'short_term', 'a2', []),
         ('u1', '2026-11-30', 'short_term', 'a3', ['pop', 'pop']),
         ('u1', '2026-11-30', 'medium_term', 'a4', ['jazz'])`,
    ]
  ) await c.run(sql);
  c.closeSync();
  db.closeSync();
  return path;
}

async function readFixture(): Promise<{ users: UserReport[]; dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "report_data_" });
  const path = await warehouse(dir);
  const config = loadConfig({
    env: { PIPELINE_DATA_DIR: dir, DUCKDB_PATH: path },
    envFile: false,
  });
  const reader = await openModelReader(config, { log: testLog().log });
  try {
    return { users: (await readReportData(reader)).users, dir };
  } finally {
    await reader.close();
  }
}

/** The little of a DOM the checks use (linkedom's own types describe a browser's window). */
interface Node {
  getAttribute(name: string): string | null;
  textContent: string | null;
}
interface Doc {
  querySelectorAll(selector: string): ArrayLike<Node> & Iterable<Node>;
  getElementById(id: string): Node | null;
}

/** Parses HTML with linkedom. */
export function dom(html: string): Doc {
  return (parseHTML(html) as unknown as { document: Doc }).document;
}

/** Marks of a chart's SVG: `tag` elements inside `g[aria-label=label]`. */
function marks(chart: Chart, tag: string): number {
  const document = dom(`<html><body>${chart.svg ?? ""}</body></html>`);
  return document.querySelectorAll(`g[aria-label="${chart.markLabel}"] ${tag}`).length;
}

Deno.test("report data: each chart's rows from the models, per user, hand-computed", async () => {
  const { users, dir } = await readFixture();
  try {
    assertEquals(users.map((u) => u.user_id), ["u1", "u2"]);
    const [u1, u2] = users as [UserReport, UserReport];

    // weekly means: a week without features has no points, but stays in the rows (coverage 0)
    assertEquals(u1.weeks.map((w) => [w.week_start, w.feature_coverage, w.means.energy]), [
      ["2026-11-23", 0.5, 0.7],
      ["2026-11-30", 0, null],
    ]);
    assertEquals(u1.features.map((p) => [p.week_start, p.feature, p.mean]), [
      ["2026-11-23", "danceability", 0.6],
      ["2026-11-23", "energy", 0.7],
    ]);

    // ranks: 30 days back from 2026-11-30 (2026-10-01 is out), short_term ranks 1..10 only;
    // B moved 2 → 1, C entered at 2, A left (rank 12)
    assertEquals(u1.latest_snapshot, "2026-11-30");
    assertEquals(u1.ranks.dates, ["2026-11-29", "2026-11-30"]);
    assertEquals(u1.ranks.tracks.map((t) => [t.label, t.first, t.last]), [
      ["B — Y", 2, 1],
      ["C — X", null, 2],
      ["A — X", 1, null],
    ]);

    // days: the 90 days up to 2026-12-01; 2026-06-01 is before them
    assertEquals(u1.days.map((d) => [d.play_date, d.plays, d.minutes]), [
      ["2026-11-30", 2, 3],
      ["2026-12-01", 1, 0.5],
    ]);
    assertEquals(u1.days_before, 1);

    // hour x weekday in UTC: Monday 23:00 two plays (1 + 2 minutes: ms_played, else the
    // duration), Tuesday 00:00 two plays (0.5 + 0.5); every other cell zero
    assertEquals(u1.heat.length, 168);
    assertEquals(
      u1.heat.filter((c) => c.plays > 0).map((c) => [c.weekday, c.hour, c.plays, c.minutes]),
      [[1, 23, 2, 3], [2, 0, 2, 1]],
    );
    assertEquals(
      u2.heat.filter((c) => c.plays > 0).map((c) => [c.weekday, c.hour, c.plays, c.minutes]),
      [[7, 10, 1, 10]],
    );

    // artists by minutes (plays without an artist left out); u2's X is not u1's
    assertEquals(u1.artists.map((a) => [a.artist_name, a.plays, a.minutes]), [
      ["X", 2, 3],
      ["Y", 1, 0.5],
    ]);
    assertEquals(u2.artists.map((a) => [a.artist_name, a.minutes]), [["X", 10]]);

    // genres of the latest short_term snapshot only, an artist counted once per genre
    assertEquals(u1.genres_snapshot, "2026-11-30");
    assertEquals(u1.genres, [{ genre: "pop", artists: 2 }, { genre: "rock", artists: 1 }]);
    assertEquals([u2.genres, u2.genres_snapshot, u2.weeks, u2.ranks.dates], [[], null, [], []]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("report charts: the SVG holds one mark per data item; empty states say why", async () => {
  const { users, dir } = await readFixture();
  try {
    const [u1, u2] = users as [UserReport, UserReport];
    const charts = Object.fromEntries((await renderCharts(u1)).map((c) => [c.id, c]));
    assertEquals(Object.keys(charts), [...CHART_IDS]);
    // two features of one range; three tracks; two weeks; two days; the full grid; two artists
    // and two genres
    const expected: Record<string, [number, string]> = {
      weekly_features: [2, "path"],
      rank_movement: [3, "path"],
      feature_coverage: [2, "circle"],
      daily_minutes: [2, "rect"],
      listening_heatmap: [168, "rect"],
      top_artists: [2, "rect"],
      top_genres: [2, "rect"],
    };
    for (const [id, [count, tag]] of Object.entries(expected)) {
      const chart = charts[id]!;
      assert(chart.svg, `${id} drawn`);
      assertEquals([chart.marks, marks(chart, tag)], [count, count], id);
      assert(chart.alt.length > 20 && chart.table && chart.table.rows.length > 0, id);
    }
    assertEquals(charts.rank_movement!.table!.rows.map((r) => r.at(-1)), ["↑1", "new", "left"]);
    assertEquals(
      charts.daily_minutes!.note,
      "1 earlier day(s) with plays are in the models (daily_listening).",
    );

    // u2: plays only — the snapshot charts and genres are sentences, the play charts drawn
    const empty = Object.fromEntries((await renderCharts(u2)).map((c) => [c.id, c]));
    for (const id of ["weekly_features", "rank_movement", "feature_coverage", "top_genres"]) {
      assertEquals([empty[id]!.svg, empty[id]!.marks], [undefined, 0], id);
      assert(empty[id]!.empty && empty[id]!.empty.length > 20, id);
    }
    assert(empty.top_genres!.empty!.startsWith("No top artists yet"));
    assert(empty.daily_minutes!.svg && empty.top_artists!.svg);

    // the page: a section per user, each chart labelled by its title and described by its alt
    const html = reportPage({
      users: [{ user_id: "u1", charts: Object.values(charts) }, {
        user_id: "u2",
        charts: Object.values(empty),
      }],
      where: "test",
      generatedAt: new Date("2026-12-01T00:00:00Z"),
    });
    const document = dom(html);
    assertEquals(document.querySelectorAll("section.user").length, 2);
    assertEquals(document.querySelectorAll("nav a").length, 2);
    const svgs = [...document.querySelectorAll("svg[role=img]")];
    assertEquals(svgs.length, 7 + 3);
    for (const svg of svgs) {
      assert(document.getElementById(svg.getAttribute("aria-labelledby")!)?.textContent);
      assert(document.getElementById(svg.getAttribute("aria-describedby")!)?.textContent);
    }
    // nothing that would fetch: no script, no external URL
    assertEquals(document.querySelectorAll("script, link, img, iframe").length, 0);
    assert(!/\b(?:src|href)="(?:https?:)?\/\//.test(html));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("report data: the first day (one snapshot) and a window in pure functions", () => {
  const first = rankMovement([
    { snapshot_date: "2026-12-01", rank: 1, track_id: "a", track_name: "A", artist_name: null },
  ]);
  assertEquals(first.dates, ["2026-12-01"]);
  assertEquals(first.tracks, [{ track_id: "a", label: "A", first: 1, last: 1 }]);
  assertEquals(rankMovement([]), { dates: [], points: [], tracks: [] });
  assertEquals(dayWindow([]), { days: [], days_before: 0 });
  assertEquals(heatGrid([]).every((c) => c.plays === 0), true);
  assertEquals(topGenres([["a", "b"], ["b"], []]), [
    { genre: "b", artists: 2 },
    { genre: "a", artists: 1 },
  ]);
  // Snowflake gives an ARRAY as JSON text
  assertEquals(genreList('["rock","pop"]'), ["rock", "pop"]);
  assertEquals([genreList(null), genreList("not json"), genreList([1, "x", ""])], [[], [], ["x"]]);
});

Deno.test("report: no warehouse yet is a StorageError that says what to run", async () => {
  const dir = await Deno.makeTempDir({ prefix: "report_none_" });
  try {
    const config = loadConfig({
      env: { PIPELINE_DATA_DIR: dir, DUCKDB_PATH: join(dir, "missing", "w.duckdb") },
      envFile: false,
    });
    const error = await assertRejects(
      () => openModelReader(config, { log: testLog().log }),
      StorageError,
    );
    assert(error.message.includes("w.duckdb") && error.hint?.includes("deno task pipeline"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
