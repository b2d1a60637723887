{#- Column lists the staging models share (written once: top tracks and plays carry both). -#}

{#- A track's fields, renamed and cast (`explicit` → `is_explicit`). -#}
{% macro stg_track_columns() %}
        cast(track_id as {{ dbt.type_string() }}) as track_id,
        cast(track_name as {{ dbt.type_string() }}) as track_name,
        artist_ids,
        artist_names,
        cast(album_id as {{ dbt.type_string() }}) as album_id,
        cast(album_name as {{ dbt.type_string() }}) as album_name,
        cast(album_release_date as {{ dbt.type_string() }}) as album_release_date,
        cast(duration_ms as {{ dbt.type_bigint() }}) as duration_ms,
        cast(explicit as boolean) as is_explicit,
        cast(popularity as integer) as popularity,
        cast(isrc as {{ dbt.type_string() }}) as isrc,
{%- endmacro %}

{#- The audio features enrich adds, cast, with where they came from. -#}
{% macro stg_audio_feature_columns() %}
        cast(danceability as {{ type_double() }}) as danceability,
        cast(energy as {{ type_double() }}) as energy,
        cast(key as integer) as key,
        cast(loudness as {{ type_double() }}) as loudness,
        cast(mode as integer) as mode,
        cast(speechiness as {{ type_double() }}) as speechiness,
        cast(acousticness as {{ type_double() }}) as acousticness,
        cast(instrumentalness as {{ type_double() }}) as instrumentalness,
        cast(liveness as {{ type_double() }}) as liveness,
        cast(valence as {{ type_double() }}) as valence,
        cast(tempo as {{ type_double() }}) as tempo,
        cast(time_signature as integer) as time_signature,
        cast(features_source as {{ dbt.type_string() }}) as features_source,
        cast(match_method as {{ dbt.type_string() }}) as match_method,
{%- endmacro %}

{#- The lineage every raw row carries. -#}
{% macro stg_lineage_columns() %}
        cast(run_id as {{ dbt.type_string() }}) as run_id,
        cast(source_file as {{ dbt.type_string() }}) as source_file,
        cast(fetched_at as {{ type_timestamp_tz() }}) as fetched_at,
        cast(loaded_at as {{ type_timestamp_tz() }}) as loaded_at
{%- endmacro %}
