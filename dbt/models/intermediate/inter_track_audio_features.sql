{#-
  One row per track_id with audio features, from every stream that carries them (top tracks and
  plays): the most recently loaded observation with features. Audio features describe the
  recording, not the listener, so this is not per user. Rebuilt in full on each run (a table).
-#}
{{ config(materialized='table') }}

{%- set features = [
    'danceability', 'energy', 'key', 'loudness', 'mode', 'speechiness', 'acousticness',
    'instrumentalness', 'liveness', 'valence', 'tempo', 'time_signature',
] -%}

with

observations as (

    select
        track_id,
        {%- for feature in features %}
        {{ feature }},
        {%- endfor %}
        features_source,
        match_method,
        loaded_at
    from {{ ref('stg_spotify__top_tracks') }}
    where coalesce(features_source, 'none') <> 'none'

    union all

    select
        track_id,
        {%- for feature in features %}
        {{ feature }},
        {%- endfor %}
        features_source,
        match_method,
        loaded_at
    from {{ ref('stg_spotify__recently_played') }}
    where coalesce(features_source, 'none') <> 'none'

),

latest as (

    select * from observations
    qualify row_number() over (
        partition by track_id
        order by loaded_at desc, features_source, match_method
    ) = 1

)

select * from latest
