/**
 * How an audio-features catalog's columns are read: the scales a feature column may be in, and
 * the column map (`AUDIO_FEATURES_CSV_COLUMNS`) that names a file's columns for what its header
 * does not say in a way the reader recognises. Light: the config imports it.
 * @module
 */

import { FEATURE_COLUMNS, type FeatureName } from "../types.ts";
import { UNIT_INTERVAL_FEATURES } from "./provider.ts";

/**
 * How a feature column's cells are read: `unit` as they are; `percent` 0–100 (divided by 100);
 * `note` a note name (`C`, `C#`, `Db` … → pitch class 0–11); `mode` `Major` / `Minor` (→ 1 / 0).
 */
export type FeatureScale = "unit" | "percent" | "note" | "mode";

/** Every {@link FeatureScale}; `%` is accepted for `percent` in the column map. */
export const FEATURE_SCALES: readonly FeatureScale[] = ["unit", "percent", "note", "mode"];

/** The scales each feature may be read in. */
export function scalesFor(feature: FeatureName): readonly FeatureScale[] {
  if (UNIT_INTERVAL_FEATURES.includes(feature)) return ["unit", "percent"];
  if (feature === "key") return ["unit", "note"];
  if (feature === "mode") return ["unit", "mode"];
  return ["unit"];
}

/** What a column map can name: the track id, title and artists columns, and each feature. */
export const COLUMN_ROLES = ["track_id", "track_name", "artists", ...FEATURE_COLUMNS] as const;
/** One of {@link COLUMN_ROLES}. */
export type ColumnRole = typeof COLUMN_ROLES[number];

/** One column map entry: the file's column (its header text), and for a feature its scale. */
export interface ColumnMapEntry {
  column: string;
  scale?: FeatureScale;
}

/** Our names → the file's columns. */
export type ColumnMap = Partial<Record<ColumnRole, ColumnMapEntry>>;

/**
 * Parses a column map: comma-separated `name=Column` or `name=Column:scale` entries, e.g.
 * `tempo=Beats Per Minute (BPM),energy=Energy:percent,key=Key:note`. Returns the map, or the
 * problems (each naming the entry and what was expected).
 */
export function parseColumnMap(text: string): { map: ColumnMap; problems: string[] } {
  const map: ColumnMap = {};
  const problems: string[] = [];
  for (const raw of text.split(",")) {
    const entry = raw.trim();
    if (!entry) continue;
    const eq = entry.indexOf("=");
    const role = (eq < 0 ? entry : entry.slice(0, eq)).trim() as ColumnRole;
    if (eq < 0 || !(COLUMN_ROLES as readonly string[]).includes(role)) {
      problems.push(
        `"${entry}": expected name=Column[:scale] with a name from ${COLUMN_ROLES.join(", ")}`,
      );
      continue;
    }
    let column = entry.slice(eq + 1).trim();
    let scale: FeatureScale | undefined;
    const colon = column.lastIndexOf(":");
    if (colon >= 0) {
      const s = column.slice(colon + 1).trim().toLowerCase();
      const named = s === "%" ? "percent" : s;
      if ((FEATURE_SCALES as readonly string[]).includes(named)) {
        scale = named as FeatureScale;
        column = column.slice(0, colon).trim();
      }
    }
    if (!column) {
      problems.push(`"${entry}": no column named after "${role}="`);
      continue;
    }
    if (map[role]) {
      problems.push(`"${role}" is mapped twice`);
      continue;
    }
    if (scale !== undefined) {
      const allowed = (FEATURE_COLUMNS as readonly string[]).includes(role)
        ? scalesFor(role as FeatureName)
        : [];
      if (!allowed.includes(scale)) {
        problems.push(
          `"${entry}": ${role} cannot be read as ${scale}${
            allowed.length
              ? ` (it may be ${allowed.join(" or ")})`
              : " (only features have a scale)"
          }`,
        );
        continue;
      }
    }
    map[role] = scale === undefined ? { column } : { column, scale };
  }
  return { map, problems };
}

/** The map as canonical text (sorted entries): what a catalog index records it was built with. */
export function columnMapText(map: ColumnMap | undefined): string {
  if (!map) return "";
  return COLUMN_ROLES.filter((r) => map[r])
    .map((r) => `${r}=${map[r]!.column}${map[r]!.scale ? `:${map[r]!.scale}` : ""}`)
    .join(",");
}
