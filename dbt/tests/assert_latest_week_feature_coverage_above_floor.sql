{#-
  Warns when, in the latest week, the share of distinct top tracks with audio features is
  below the floor (var coverage_floor, from DBT_COVERAGE_FLOOR; default 0.5). Only the latest
  week is checked, so one poor week in the past does not warn forever.
-#}
{{ config(severity='warn') }}

with

weekly as (

    select * from {{ ref('inter_top_weekly_audio_features') }}

)

select
    week_start,
    time_range,
    distinct_tracks,
    tracks_with_features,
    feature_coverage
from weekly
where
    week_start = (select max(week_start) from weekly)
    and feature_coverage < {{ var('coverage_floor') | float }}
