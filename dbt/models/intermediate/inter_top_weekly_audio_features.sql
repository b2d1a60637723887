{#-
  Incremental: a run recomputes only the ISO weeks containing a snapshot date that received a
  load since the last build, from all of that week's rows (so a re-run day replaces its numbers);
  `--full-refresh` recomputes every week.
-#}
{{
    config(
        unique_key=['user_id', 'week_start', 'time_range'],
        incremental_strategy='delete+insert',
    )
}}

{%- set features = [
    'danceability', 'energy', 'valence', 'tempo', 'loudness',
    'speechiness', 'acousticness', 'instrumentalness', 'liveness',
] -%}

with

top_tracks as (

    select * from {{ ref('stg_spotify__top_tracks') }}

),

daily_snapshots as (

    -- the latest load of each (snapshot_date, time_range) wins
    select
        *,
        {{ iso_week_start('snapshot_date') }} as week_start,
        coalesce(features_source, 'none') <> 'none' as has_features
    from top_tracks
    {% if is_incremental() %}
    where {{ iso_week_start('snapshot_date') }} in (
        select {{ iso_week_start('snapshot_date') }}
        from ({{ snapshot_dates_loaded_since(ref('stg_spotify__top_tracks'), 'last_loaded_at') }}) as loaded
    )
    {% endif %}
    qualify {{ is_latest_load() }}

),

track_days as (

    -- one vote per track per day: Spotify sometimes lists a track twice in one list; its best
    -- rank stands for it, so a week's means are over distinct (day, track) pairs
    select * from daily_snapshots
    qualify row_number() over (
        partition by user_id, snapshot_date, time_range, track_id
        order by rank
    ) = 1

),

weekly as (

    select
        user_id,
        week_start,
        {{ iso_year('week_start') }} as iso_year,
        {{ iso_week('week_start') }} as iso_week,
        time_range,
        count(distinct snapshot_date) as snapshot_days,
        count(*) as track_days,
        count(distinct track_id) as distinct_tracks,
        count(distinct case when has_features then track_id end) as tracks_with_features,
        cast(count(distinct case when has_features then track_id end) as {{ type_double() }})
            / count(distinct track_id) as feature_coverage,
        {%- for feature in features %}
        avg({{ feature }}) as {{ feature }}_mean,
        min({{ feature }}) as {{ feature }}_min,
        max({{ feature }}) as {{ feature }}_max,
        {%- endfor %}
        max(loaded_at) as last_loaded_at

    from track_days
    group by user_id, week_start, time_range

)

select * from weekly
