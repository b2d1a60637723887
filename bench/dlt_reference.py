"""The reference for bench scenario 11: the toolkit's fetch -> load job on the bundled sample
(one user's top tracks), done with dlt: read the recorded Spotify page, add the audio features
of the sample CSV (by track id), and load the rows into a DuckDB file through Parquet files.

Usage: python bench/dlt_reference.py <sample page> <features csv> <work dir> <snapshot date>
Run in a fresh process each time (as the toolkit's pipeline is): Python start-up and dlt's
imports are part of what is measured. Prints the rows loaded.
"""

import csv
import json
import sys

import dlt

FEATURES = (
    "danceability energy key loudness mode speechiness acousticness instrumentalness "
    "liveness valence tempo time_signature"
).split()


def main(sample: str, features_csv: str, work: str, snapshot_date: str) -> int:
    with open(features_csv, newline="", encoding="utf-8") as f:
        features = {row["track_id"]: row for row in csv.DictReader(f)}
    with open(sample, encoding="utf-8") as f:
        page = json.load(f)

    @dlt.resource(name="top_tracks", write_disposition="append")
    def top_tracks():
        for rank, item in enumerate(page["items"], start=1):
            found = features.get(item["id"], {})
            yield {
                "user_id": "sample",
                "snapshot_date": snapshot_date,
                "time_range": "short_term",
                "rank": rank,
                "track_id": item["id"],
                "track_name": item["name"],
                "artist_names": ", ".join(a["name"] for a in item["artists"]),
                "album_name": item["album"]["name"],
                "duration_ms": item["duration_ms"],
                "explicit": item["explicit"],
                **{k: float(found[k]) for k in FEATURES if found.get(k)},
            }

    pipeline = dlt.pipeline(
        pipeline_name="bench_top_tracks",
        destination=dlt.destinations.duckdb(f"{work}/dlt.duckdb"),
        dataset_name="raw",
        pipelines_dir=f"{work}/pipelines",
    )
    info = pipeline.run(top_tracks(), loader_file_format="parquet")
    info.raise_on_failed_jobs()
    print(pipeline.last_trace.last_normalize_info.row_counts.get("top_tracks", 0))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
