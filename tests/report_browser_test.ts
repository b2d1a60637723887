/**
 * The report in a real browser (headless Chromium): two daily runs on the bundled sample (so the
 * rank chart has two days), the report built by the run's last step from the dbt models, opened
 * from disk with the network off and through `serve` with the bearer token. Zero console errors,
 * no request but the page's own, each chart's SVG with the number of marks the models say (by
 * SQL of this test's own), and a screenshot per chart kept in `.data/test-artifacts/report/`.
 */

import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { loadConfig } from "../lib/config.ts";
import { withReadOnlyDuckDb } from "../lib/dbt/_read_only.ts";
import { UNIT_INTERVAL_FEATURES } from "../lib/features/provider.ts";
import { runPipeline } from "../lib/pipeline.ts";
import { reportPath } from "../lib/report/build.ts";
import { serve } from "../lib/server/serve.ts";
import { launchChromium } from "./_chromium.ts";
import { assert, assertEquals, ROOT, testLog } from "./_spotify_test_util.ts";

const TOKEN = "report-browser-token-0123456789abcdef";
const ARTIFACTS = join(ROOT, ".data", "test-artifacts", "report");
/** The element each mark label draws. */
const MARK_TAG: Record<string, string> = {
  line: "path",
  dot: "circle",
  rect: "rect",
  cell: "rect",
  bar: "rect",
};

interface ChartInPage {
  id: string;
  user: string;
  label: string | null;
  marks: number;
  labelled: boolean;
  empty: string | null;
  box: { x: number; y: number; width: number; height: number };
}

/** What the page shows, read in the browser. */
const READ_CHARTS = `[...document.querySelectorAll("article.chart")].map((a) => {
  const label = a.dataset.markLabel ?? null;
  const tag = ${JSON.stringify(MARK_TAG)}[label] ?? "none";
  const svg = a.querySelector("svg[role=img]");
  const r = a.getBoundingClientRect();
  return {
    id: a.dataset.chart,
    user: a.closest("section.user").dataset.user,
    label,
    marks: svg ? svg.querySelectorAll('g[aria-label="' + label + '"] ' + tag).length : 0,
    labelled: !!svg && !!document.getElementById(svg.getAttribute("aria-labelledby"))
      && !!document.getElementById(svg.getAttribute("aria-describedby")),
    empty: a.querySelector("p.empty")?.textContent ?? null,
    box: { x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height },
  };
})`;

/** A user's charts' expected marks, by SQL over the models (not the report's own code). */
async function expectedMarks(path: string, user: string): Promise<Record<string, number>> {
  const features = UNIT_INTERVAL_FEATURES;
  const u = `user_id = '${user}'`;
  return await withReadOnlyDuckDb(path, async (c) => {
    const one = async (sql: string) =>
      Number(Object.values((await c.runAndReadAll(sql)).getRowObjectsJS()[0]!)[0]);
    return {
      weekly_features: await one(
        `select ${
          features.map((f) => `count(distinct case when ${f}_mean is not null then time_range end)`)
            .join(" + ")
        } from main.inter_top_weekly_audio_features where ${u}`,
      ),
      rank_movement: await one(
        `select count(distinct track_id) from main.top_tracks
         where ${u} and time_range = 'short_term' and rank <= 10
           and snapshot_date > (select max(snapshot_date) from main.top_tracks where ${u}) - 30`,
      ),
      feature_coverage: await one(
        `select count(*) from main.inter_top_weekly_audio_features where ${u}`,
      ),
      daily_minutes: await one(
        `select count(*) from main.daily_listening
         where ${u} and play_date > (select max(play_date) from main.daily_listening where ${u}) - 90`,
      ),
      listening_heatmap: 7 * 24,
      top_artists: await one(
        `select least(10, count(distinct artist_name)) from main.plays where ${u}`,
      ),
      top_genres: await one(
        `select least(10, count(distinct g)) from (
           select unnest(genres) as g from main.top_artists
           where ${u} and time_range = 'short_term'
             and snapshot_date = (select max(snapshot_date) from main.top_artists where ${u}))`,
      ),
    };
  });
}

Deno.test({
  name: "report in Chromium: offline from disk and through serve, every chart's marks",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "report_browser_" });
    const config = loadConfig({
      env: {
        PIPELINE_DATA_DIR: dir,
        SPOTIFY_SOURCE: "sample",
        PIPELINE_TRIGGER_TOKEN: TOKEN,
        PIPELINE_PORT: "0",
      },
      envFile: false,
    });
    const { log } = testLog();
    try {
      await runPipeline(config, { log, date: "2026-11-29" });
      const { run } = await runPipeline(config, { log, date: "2026-11-30" });
      assertEquals(run.manifest.steps.report?.status, "succeeded");
      const file = reportPath(config);
      assertEquals(run.manifest.steps.report?.summary?.path, file);
      // the bundled sample's two users, each with a section of their own charts
      const db = config.warehouse.kind === "duckdb" ? config.warehouse.path : "";
      const expected: Record<string, Record<string, number>> = {
        sample: await expectedMarks(db, "sample"),
        sample_2: await expectedMarks(db, "sample_2"),
      };
      assert(
        expected.sample!.rank_movement! >= 10 && expected.sample!.daily_minutes! >= 1 &&
          expected.sample_2!.rank_movement! >= 10 && expected.sample_2!.daily_minutes! >= 1,
        JSON.stringify(expected),
      );

      await Deno.mkdir(ARTIFACTS, { recursive: true });
      let fromDisk: ChartInPage[];
      {
        await using browser = await launchChromium({ offline: true });
        const url = pathToFileURL(file).href;
        await browser.open(url);
        fromDisk = await browser.evaluate<ChartInPage[]>(READ_CHARTS);
        assertEquals(browser.log.errors, []);
        assertEquals(browser.log.requests, [url]);
        for (const chart of fromDisk) {
          const png = await browser.screenshot(chart.box);
          await Deno.writeFile(join(ARTIFACTS, `${chart.user}-${chart.id}.png`), png);
        }
        await Deno.writeFile(join(ARTIFACTS, "report.png"), await browser.screenshot());
        await Deno.writeFile(
          join(ARTIFACTS, "overview.png"),
          await browser.screenshot({ x: 0, y: 0, width: 900, height: 1200 }),
        );
      }
      const marks: Record<string, Record<string, number>> = {};
      for (const c of fromDisk) (marks[c.user] ??= {})[c.id] = c.marks;
      assertEquals(marks, expected, "marks per user and chart");
      for (const chart of fromDisk) {
        assert(chart.labelled, `${chart.id}: labelled and described`);
        assertEquals(chart.empty, null, chart.id);
        assert(chart.box.height > 100, `${chart.id} has a size`);
      }

      // through serve: the token is required; with it, the same page, nothing else requested
      const stop = new AbortController();
      let listening!: (addr: Deno.NetAddr) => void;
      const addr = new Promise<Deno.NetAddr>((r) => (listening = r));
      const done = serve(config, { log, signal: stop.signal, onListen: listening });
      try {
        const { port } = await addr;
        const url = `http://127.0.0.1:${port}/report`;
        const refused = await fetch(url);
        await refused.body?.cancel();
        assertEquals(refused.status, 401);
        await using browser = await launchChromium();
        await browser.open(url, { headers: { authorization: `Bearer ${TOKEN}` } });
        assertEquals(browser.log.statuses.get(url), 200);
        assertEquals(browser.log.errors, []);
        assertEquals(browser.log.requests, [url]);
        const served = await browser.evaluate<ChartInPage[]>(READ_CHARTS);
        assertEquals(
          served.map((c) => [c.user, c.id, c.marks]),
          fromDisk.map((c) => [c.user, c.id, c.marks]),
        );
      } finally {
        stop.abort();
        await done;
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
