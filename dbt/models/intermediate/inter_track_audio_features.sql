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

    {%- for relation in [ref('stg_spotify__top_tracks'), ref('stg_spotify__recently_played')] %}
    select
        track_id,
        {%- for feature in features %}
        {{ feature }},
        {%- endfor %}
        features_source,
        match_method,
        loaded_at
    from {{ relation }}
    where coalesce(features_source, 'none') <> 'none'
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}

),

latest as (

    select * from observations
    qualify row_number() over (
        partition by track_id
        order by loaded_at desc, features_source, match_method
    ) = 1

)

select * from latest
