{#-
  Per user and ISO week: what the user listened to, as audio-feature means weighted by plays (a
  track played 3 times counts 3 times) — beside the owner's ranking-based
  inter_top_weekly_audio_features. Plays are deduplicated first (overlapping polls); features
  come from inter_track_audio_features (any stream that saw the track). Rebuilt in full (a table).
-#}
{{ config(materialized='table') }}

{%- set features = [
    'danceability', 'energy', 'valence', 'tempo', 'loudness',
    'speechiness', 'acousticness', 'instrumentalness', 'liveness',
] -%}

with

plays as (

    select user_id, played_at, played_date, track_id
    from {{ ref('stg_spotify__recently_played') }}
    qualify {{ is_first_load_of_play() }}

),

features as (

    select * from {{ ref('inter_track_audio_features') }}

),

joined as (

    select
        plays.user_id,
        {{ iso_week_start('plays.played_date') }} as week_start,
        plays.track_id,
        features.track_id is not null as has_features,
        {%- for feature in features %}
        features.{{ feature }},
        {%- endfor %}
        plays.played_at
    from plays
    left join features on features.track_id = plays.track_id

),

weekly as (

    select
        user_id,
        week_start,
        {{ iso_year('week_start') }} as iso_year,
        {{ iso_week('week_start') }} as iso_week,
        count(*) as plays,
        sum(case when has_features then 1 else 0 end) as plays_with_features,
        cast(sum(case when has_features then 1 else 0 end) as {{ type_double() }})
            / count(*) as feature_coverage,
        count(distinct track_id) as distinct_tracks,
        {%- for feature in features %}
        avg({{ feature }}) as {{ feature }}_mean,
        {%- endfor %}
        max(played_at) as last_played_at

    from joined
    group by user_id, week_start

)

select * from weekly
