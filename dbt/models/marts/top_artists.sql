{#-
  The user's top artists, one row per (user_id, snapshot_date, time_range, rank), with their
  genres. When a day was loaded more than once the latest load wins as a whole (as in
  top_tracks). Incremental: only snapshot dates that received a load since the last build are
  recomputed (delete+insert on user_id, snapshot_date, time_range).
-#}
{{
    config(
        unique_key=['user_id', 'snapshot_date', 'time_range'],
        incremental_strategy='delete+insert',
    )
}}

with

top_artists as (

    select * from {{ ref('stg_spotify__top_artists') }}
    {% if is_incremental() %}
    where snapshot_date in (
        {{ snapshot_dates_loaded_since(ref('stg_spotify__top_artists')) }}
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
        artist_id,
        artist_name,
        genres,
        followers,
        popularity,
        run_id,
        source_file,
        fetched_at,
        loaded_at

    from top_artists

)

select * from final
