/**
 * The report's charts: each one a title, a text alternative, an SVG drawn by Observable Plot on
 * a server-side DOM (linkedom; nothing runs in the viewer's browser), and a small table of the
 * numbers under it — or, when there is nothing to draw yet, a sentence saying why and when there
 * will be. Plot and linkedom are imported only by {@link renderCharts}.
 * @module
 */

import {
  DAYS_WINDOW,
  RANK_TOP,
  RANK_WINDOW_DAYS,
  TIME_RANGES,
  TOP_N,
  UNIT_FEATURES,
  type UserReport,
  WEEKDAYS,
} from "./data.ts";

/** The charts of a report, in page order (ids are stable: tests and anchors use them). */
export const CHART_IDS = [
  "weekly_features",
  "rank_movement",
  "feature_coverage",
  "daily_minutes",
  "listening_heatmap",
  "top_artists",
  "top_genres",
] as const;
/** One of {@link CHART_IDS}. */
export type ChartId = typeof CHART_IDS[number];

/** A small table shown under a chart. */
export interface ChartTable {
  caption: string;
  columns: string[];
  rows: (string | number)[][];
}

/** One rendered chart. */
export interface Chart {
  id: ChartId;
  title: string;
  /** The text alternative: what the chart shows, in words and numbers. */
  alt: string;
  /** The chart's SVG (a `<figure>` when it has a legend); absent when {@link empty}. */
  svg?: string;
  /** Why there is no chart yet (shown instead of it). */
  empty?: string;
  /** How many data marks the SVG holds (bars, cells, lines...): what the browser test counts. */
  marks: number;
  /** A line under the chart (e.g. what the window leaves out). */
  note?: string;
  /** The element the marks are (`rect`, `path`), inside `g[aria-label=<markLabel>]`. */
  markLabel?: string;
  table?: ChartTable;
}

type PlotModule = typeof import("@observablehq/plot");

const WIDTH = 760;

/** Renders every chart of one user. */
export async function renderCharts(user: UserReport): Promise<Chart[]> {
  const Plot = await import("@observablehq/plot");
  const { parseHTML } = await import("linkedom");
  // linkedom's window (its types describe a browser's: only `document` is used, by Plot)
  const { document } = parseHTML(
    "<!doctype html><html><head></head><body></body></html>",
  ) as unknown as {
    document: unknown;
  };
  const draw = (options: Parameters<PlotModule["plot"]>[0]) =>
    (Plot.plot({ document, width: WIDTH, ...options } as Parameters<PlotModule["plot"]>[0]) as {
      outerHTML: string;
    }).outerHTML;
  return [
    weeklyFeatures(Plot, draw, user),
    rankMovementChart(Plot, draw, user),
    featureCoverage(Plot, draw, user),
    dailyMinutes(Plot, draw, user),
    listeningHeatmap(Plot, draw, user),
    topArtistsChart(Plot, draw, user),
    topGenresChart(Plot, draw, user),
  ];
}

type Draw = (options: Parameters<PlotModule["plot"]>[0]) => string;

/** Whole-day ticks over a few days (else Plot's own, which may fall between days). */
const dayTicks = (days: number) => days <= 14 ? { ticks: "day" as const } : {};
/** A tick per Monday over a few weeks. */
const weekTicks = (weeks: number) => weeks <= 12 ? { ticks: "monday" as const } : {};
const utc = (date: string) => new Date(`${date.slice(0, 10)}T00:00:00Z`);
const fixed = (n: number | null, digits = 2) => n === null ? "—" : n.toFixed(digits);
const pct = (n: number) => `${Math.round(n * 100)}%`;
const rangesIn = (ranges: Iterable<string>) => {
  const present = new Set(ranges);
  return [
    ...TIME_RANGES.filter((r) => present.has(r)),
    ...[...present].filter((r) => !(TIME_RANGES as readonly string[]).includes(r)).sort(),
  ];
};
/** The last `n` distinct weeks of week rows. */
const lastWeeks = (weeks: UserReport["weeks"], n: number) => {
  const keep = new Set([...new Set(weeks.map((w) => w.week_start))].slice(-n));
  return weeks.filter((w) => keep.has(w.week_start));
};

function weeklyFeatures(Plot: PlotModule, draw: Draw, user: UserReport): Chart {
  const title = "Audio-feature means per ISO week";
  const id = "weekly_features";
  if (user.weeks.length === 0) {
    return {
      id,
      title,
      alt: "No chart: no top-track snapshots yet.",
      empty:
        "No top-track snapshots yet: the weekly means show after the first daily run (`deno task pipeline`).",
      marks: 0,
    };
  }
  const table: ChartTable = {
    caption: "Latest weeks (means over the week's top tracks with features)",
    columns: ["Week (Monday)", "Time range", "Coverage", ...UNIT_FEATURES, "tempo (BPM)"],
    rows: lastWeeks(user.weeks, 4).map((w) => [
      w.week_start,
      w.time_range,
      pct(w.feature_coverage),
      ...UNIT_FEATURES.map((f) => fixed(w.means[f])),
      fixed(w.tempo_mean, 0),
    ]),
  };
  if (user.features.length === 0) {
    return {
      id,
      title,
      alt: "No chart: none of the weeks' top tracks has audio features yet.",
      empty:
        "None of these weeks' top tracks has audio features yet: add a features source (AUDIO_FEATURES_CSV, ReccoBeats) and run the pipeline again.",
      marks: 0,
      table,
    };
  }
  const ranges = rangesIn(user.features.map((p) => p.time_range));
  const series = new Set(user.features.map((p) => `${p.time_range}:${p.feature}`)).size;
  const weeks = new Set(user.features.map((p) => p.week_start));
  const weekList = [...weeks].sort();
  const svg = draw({
    height: 120 + 150 * ranges.length,
    marginRight: 90,
    x: { type: "utc", label: "ISO week (Monday, UTC)", ...weekTicks(weekList.length) },
    y: { domain: [0, 1], label: "Mean (0–1)", grid: true },
    fy: { domain: ranges, label: "Time range" },
    color: { legend: true, domain: [...UNIT_FEATURES], scheme: "tableau10" },
    marks: [
      Plot.frame({ stroke: "#ddd" }),
      Plot.line(user.features, {
        x: (p) => utc(p.week_start),
        y: "mean",
        z: "feature",
        stroke: "feature",
        fy: "time_range",
        marker: "dot",
      }),
    ],
  });
  return {
    id,
    title,
    alt: `Line chart: the weekly mean of ${UNIT_FEATURES.length} audio features (0 to 1) for ${
      ranges.join(", ")
    }, ${weeks.size} ISO week(s) from ${weekList[0]} to ${weekList.at(-1)}.`,
    svg,
    marks: series,
    markLabel: "line",
    table,
  };
}

function rankMovementChart(Plot: PlotModule, draw: Draw, user: UserReport): Chart {
  const title = `Top ${RANK_TOP} short-term tracks: rank by day (last ${RANK_WINDOW_DAYS} days)`;
  const id = "rank_movement";
  const { dates, points, tracks } = user.ranks;
  if (dates.length === 0) {
    return {
      id,
      title,
      alt: "No chart: no short-term top tracks yet.",
      empty: "No short-term top tracks yet: the ranks show after the first daily run.",
      marks: 0,
    };
  }
  // the table: the tracks in the top on the window's first or last day (the others are drawn)
  const ends = tracks.filter((t) => t.first !== null || t.last !== null);
  const between = tracks.length - ends.length;
  const table: ChartTable = {
    caption: `Rank on ${dates[0]} and on ${dates.at(-1)} (— : not in the top ${RANK_TOP})${
      between ? `; ${between} more track(s) were in it in between (drawn)` : ""
    }`,
    columns: ["Track", `Rank ${dates[0]}`, `Rank ${dates.at(-1)}`, "Change"],
    rows: ends.map((t) => [
      t.label,
      t.first ?? "—",
      t.last ?? "—",
      t.first === null || t.last === null
        ? (t.first === null ? "new" : "left")
        : t.first === t.last
        ? "="
        : t.first > t.last
        ? `↑${t.first - t.last}`
        : `↓${t.last - t.first}`,
    ]),
  };
  if (dates.length === 1) {
    return {
      id,
      title,
      alt: `No chart: one snapshot so far (${dates[0]}).`,
      empty: `One snapshot so far (${
        dates[0]
      }): the rank lines start with the second day's run. Today's top ${RANK_TOP} is below.`,
      marks: 0,
      table,
    };
  }
  const labelOf = new Map(tracks.map((t) => [t.track_id, t.label]));
  // labels on the latest day's top only (a line that ends earlier is a track that left)
  const latest = points.filter((p) => p.snapshot_date === dates.at(-1));
  const short = (s: string) => s.length > 34 ? `${s.slice(0, 33)}…` : s;
  const svg = draw({
    height: 360,
    marginRight: 230,
    x: { type: "utc", label: "Snapshot date (UTC)", ...dayTicks(dates.length) },
    y: {
      domain: Array.from({ length: RANK_TOP }, (_, i) => i + 1),
      type: "point",
      label: "Rank (1 = top)",
    },
    color: { scheme: "tableau10" },
    marks: [
      Plot.line(points, {
        x: (p) => utc(p.snapshot_date),
        y: "rank",
        z: "track_id",
        stroke: "track_id",
        strokeWidth: 2,
      }),
      Plot.dot(points, { x: (p) => utc(p.snapshot_date), y: "rank", fill: "track_id", r: 3 }),
      Plot.text(latest, {
        x: (p) => utc(p.snapshot_date),
        y: "rank",
        text: (p) => short(labelOf.get(p.track_id) ?? p.track_id),
        dx: 8,
        textAnchor: "start",
        fontSize: 10,
      }),
    ],
  });
  return {
    id,
    title,
    alt:
      `Bump chart: the short-term rank (1 to ${RANK_TOP}) of ${tracks.length} track(s) on ${dates.length} day(s) from ${
        dates[0]
      } to ${dates.at(-1)}, one line per track.`,
    svg,
    marks: tracks.length,
    markLabel: "line",
    table,
  };
}

function featureCoverage(Plot: PlotModule, draw: Draw, user: UserReport): Chart {
  const title = "Audio-feature coverage per ISO week";
  const id = "feature_coverage";
  if (user.weeks.length === 0) {
    return {
      id,
      title,
      alt: "No chart: no top-track snapshots yet.",
      empty: "No top-track snapshots yet: coverage shows after the first daily run.",
      marks: 0,
    };
  }
  const ranges = rangesIn(user.weeks.map((w) => w.time_range));
  const weeks = [...new Set(user.weeks.map((w) => w.week_start))];
  const svg = draw({
    height: 260,
    x: { type: "utc", label: "ISO week (Monday, UTC)", ...weekTicks(weeks.length) },
    y: { domain: [0, 100], label: "Top tracks with features (%)", grid: true },
    color: { legend: true, domain: ranges, scheme: "set2" },
    marks: [
      Plot.ruleY([0]),
      Plot.dot(user.weeks, {
        x: (w) => utc(w.week_start),
        y: (w) => w.feature_coverage * 100,
        fill: "time_range",
        r: 4,
      }),
      Plot.line(user.weeks, {
        x: (w) => utc(w.week_start),
        y: (w) => w.feature_coverage * 100,
        z: "time_range",
        stroke: "time_range",
      }),
    ],
  });
  return {
    id,
    title,
    alt: `Dot chart: the share of the week's distinct top tracks that have audio features, for ${
      ranges.join(", ")
    }, ${weeks.length} week(s) from ${weeks[0]} to ${weeks.at(-1)}.`,
    svg,
    marks: user.weeks.length,
    markLabel: "dot",
    table: {
      caption: "Latest weeks",
      columns: ["Week (Monday)", "Time range", "Distinct tracks", "With features", "Coverage"],
      rows: lastWeeks(user.weeks, 4).map((w) => [
        w.week_start,
        w.time_range,
        w.distinct_tracks,
        w.tracks_with_features,
        pct(w.feature_coverage),
      ]),
    },
  };
}

const NO_PLAYS =
  "No plays yet: they come from `deno task poll` (the last 50 plays, every 30 minutes) and from your privacy export (`deno task import`).";

function dailyMinutes(Plot: PlotModule, draw: Draw, user: UserReport): Chart {
  const title = `Listening minutes per day (last ${DAYS_WINDOW} days)`;
  const id = "daily_minutes";
  const { days } = user;
  if (days.length === 0) {
    return { id, title, alt: "No chart: no plays yet.", empty: NO_PLAYS, marks: 0 };
  }
  const total = days.reduce((n, d) => n + d.minutes, 0);
  const svg = draw({
    height: 240,
    x: { type: "utc", label: "Day (UTC)", ...dayTicks(days.length) },
    y: { label: "Minutes listened", grid: true },
    marks: [
      Plot.rectY(days, {
        x: (d) => utc(d.play_date),
        y: "minutes",
        interval: "day",
        fill: "#1db954",
      }),
      Plot.ruleY([0]),
    ],
  });
  const busiest = days.reduce((a, b) => b.minutes > a.minutes ? b : a);
  return {
    id,
    title,
    alt: `Bar chart: minutes listened on each of ${days.length} day(s) from ${
      days[0]!.play_date
    } to ${days.at(-1)!.play_date}, ${
      Math.round(total)
    } minutes in all; the most on ${busiest.play_date} (${Math.round(busiest.minutes)} min).`,
    svg,
    marks: days.length,
    markLabel: "rect",
    ...(user.days_before
      ? {
        note: `${user.days_before} earlier day(s) with plays are in the models (daily_listening).`,
      }
      : {}),
    table: {
      caption: "Latest days",
      columns: ["Day", "Plays", "Minutes"],
      rows: days.slice(-7).map((d) => [d.play_date, d.plays, fixed(d.minutes, 1)]),
    },
  };
}

function listeningHeatmap(Plot: PlotModule, draw: Draw, user: UserReport): Chart {
  const title = "When you listen: minutes by hour and weekday (UTC)";
  const id = "listening_heatmap";
  const total = user.heat.reduce((n, c) => n + c.minutes, 0);
  const plays = user.heat.reduce((n, c) => n + c.plays, 0);
  if (plays === 0) return { id, title, alt: "No chart: no plays yet.", empty: NO_PLAYS, marks: 0 };
  const svg = draw({
    height: 260,
    padding: 0.05,
    x: {
      type: "band",
      domain: Array.from({ length: 24 }, (_, h) => h),
      label: "Hour of day (UTC)",
    },
    y: { type: "band", domain: [...WEEKDAYS], label: null },
    // a stepped scale: its legend is drawn as rects (a continuous ramp needs a canvas)
    color: { type: "quantize", n: 5, scheme: "greens", legend: true, label: "Minutes" },
    marks: [
      Plot.cell(user.heat, {
        x: "hour",
        y: (c) => WEEKDAYS[c.weekday - 1],
        fill: "minutes",
        inset: 0.5,
      }),
    ],
  });
  const peak = user.heat.reduce((a, b) => b.minutes > a.minutes ? b : a);
  const byDay = WEEKDAYS.map((name, i) => {
    const cells = user.heat.filter((c) => c.weekday === i + 1);
    return [
      name,
      cells.reduce((n, c) => n + c.plays, 0),
      fixed(cells.reduce((n, c) => n + c.minutes, 0), 1),
    ];
  });
  return {
    id,
    title,
    alt: `Heatmap of 7 weekdays by 24 hours (UTC): ${plays} plays, ${
      Math.round(total)
    } minutes; the busiest hour is ${WEEKDAYS[peak.weekday - 1]} ${
      String(peak.hour).padStart(2, "0")
    }:00 (${Math.round(peak.minutes)} min).`,
    svg,
    marks: user.heat.length,
    markLabel: "cell",
    table: { caption: "Per weekday", columns: ["Weekday", "Plays", "Minutes"], rows: byDay },
  };
}

function truncate(label: string) {
  return label.length > 32 ? `${label.slice(0, 31)}…` : label;
}

/** A horizontal bar per item, labelled on the left (the top-N charts). */
function horizontalBars<T extends object>(
  Plot: PlotModule,
  draw: Draw,
  items: T[],
  bars: { label: keyof T & string; value: keyof T & string; axis: string; fill: string },
  x: Record<string, unknown> = {},
): string {
  const labels = items.map((item) => String(item[bars.label as keyof T]));
  return draw({
    height: 50 + 24 * items.length,
    marginLeft: Math.min(240, 12 + 7 * Math.max(...labels.map((l) => Math.min(l.length, 32)))),
    x: { label: bars.axis, grid: true, ...x },
    y: { domain: labels, label: null, tickFormat: truncate },
    marks: [Plot.barX(items, { x: bars.value, y: bars.label, fill: bars.fill }), Plot.ruleX([0])],
  });
}

function topArtistsChart(Plot: PlotModule, draw: Draw, user: UserReport): Chart {
  const title = `Top ${TOP_N} artists by minutes listened`;
  const id = "top_artists";
  const { artists } = user;
  if (artists.length === 0) {
    return { id, title, alt: "No chart: no plays yet.", empty: NO_PLAYS, marks: 0 };
  }
  const svg = horizontalBars(Plot, draw, artists, {
    label: "artist_name",
    value: "minutes",
    axis: "Minutes listened",
    fill: "#1db954",
  });
  return {
    id,
    title,
    alt: `Bar chart: the ${artists.length} artist(s) you listened to most, ${
      artists[0]!.artist_name
    } first with ${Math.round(artists[0]!.minutes)} minutes.`,
    svg,
    marks: artists.length,
    markLabel: "bar",
    table: {
      caption: "Primary artist of each play",
      columns: ["Artist", "Plays", "Minutes"],
      rows: artists.map((a) => [a.artist_name, a.plays, fixed(a.minutes, 1)]),
    },
  };
}

function topGenresChart(Plot: PlotModule, draw: Draw, user: UserReport): Chart {
  const title = `Top ${TOP_N} genres of your short-term top artists`;
  const id = "top_genres";
  const { genres } = user;
  if (genres.length === 0) {
    return {
      id,
      title,
      alt: "No chart: no genres.",
      empty: user.genres_snapshot === null
        ? "No top artists yet: genres show after a daily run with the top_artists stream (PIPELINE_STREAMS)."
        : `Spotify gave no genres for your top artists of ${user.genres_snapshot}.`,
      marks: 0,
    };
  }
  const svg = horizontalBars(Plot, draw, genres, {
    label: "genre",
    value: "artists",
    axis: "Top artists with the genre",
    fill: "#4e79a7",
  }, { tickFormat: "d" });
  return {
    id,
    title,
    alt:
      `Bar chart: the ${genres.length} genre(s) most common among your short-term top artists of ${user.genres_snapshot}, ${
        genres[0]!.genre
      } first (${genres[0]!.artists} artist(s)).`,
    svg,
    marks: genres.length,
    markLabel: "bar",
    table: {
      caption: `Top artists of ${user.genres_snapshot}`,
      columns: ["Genre", "Artists"],
      rows: genres.map((g) => [g.genre, g.artists]),
    },
  };
}
