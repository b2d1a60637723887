{#-
  Per user and UTC day: plays, minutes listened, distinct tracks and distinct artists. Minutes
  are how long each play played when the export says so (ms_played), else the track's duration
  (the recently-played endpoint does not say how much of a track was heard). Distinct artists
  count artist ids (export-only plays have names only: not counted). Rebuilt in full from
  `plays` (a table: one row per user-day).
-#}
{{ config(materialized='table') }}

with

plays as (

    select * from {{ ref('plays') }}

),

play_artists as (

    {{ unnest_array('plays', 'artist_ids', 'artist_id', ['user_id', 'played_date']) }}

),

artists_per_day as (

    select user_id, played_date, count(distinct artist_id) as distinct_artists
    from play_artists
    group by user_id, played_date

),

daily as (

    select
        user_id,
        played_date as play_date,
        count(*) as plays,
        round(sum(coalesce(ms_played, duration_ms)) / 60000.0, 2) as minutes,
        count(distinct play_key) as distinct_tracks,
        min(played_at) as first_played_at,
        max(played_at) as last_played_at
    from plays
    group by user_id, played_date

),

final as (

    select
        daily.user_id,
        daily.play_date,
        daily.plays,
        daily.minutes,
        daily.distinct_tracks,
        coalesce(artists_per_day.distinct_artists, 0) as distinct_artists,
        daily.first_played_at,
        daily.last_played_at
    from daily
    left join artists_per_day
        on artists_per_day.user_id = daily.user_id
        and artists_per_day.played_date = daily.play_date

)

select * from final
