{#-
  One row per (user_id, snapshot_date, time_range, rank). When a day was loaded more than once, the
  latest load wins as a whole. Incremental: only snapshot dates that received a load since the
  last build are recomputed, and their (user_id, snapshot_date, time_range) rows are replaced
  (delete+insert on that grain, so ranks a re-run no longer has disappear too).
-#}
{{
    config(
        unique_key=['user_id', 'snapshot_date', 'time_range'],
        incremental_strategy='delete+insert',
    )
}}

with

top_tracks as (

    select * from {{ ref('stg_spotify__top_tracks') }}
    {% if is_incremental() %}
    where snapshot_date in (
        {{ snapshot_dates_loaded_since(ref('stg_spotify__top_tracks')) }}
    )
    {% endif %}
    qualify {{ is_latest_load() }}

),

final as (

    select
        user_id,
        snapshot_date,
        {{ iso_week_start('snapshot_date') }} as week_start,
        time_range,
        rank,
        track_id,
        track_name,
        artist_ids,
        artist_names,
        album_id,
        album_name,
        album_release_date,
        duration_ms,
        is_explicit,
        popularity,
        isrc,
        coalesce(features_source, 'none') <> 'none' as has_audio_features,
        run_id,
        source_file,
        fetched_at,
        loaded_at

    from top_tracks

)

select * from final
