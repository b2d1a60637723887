{#-
  The privacy export's streams, renamed and cast, one row per stream per load, with the key
  that identifies a stream within a user's history: its end (`ts`) and what was played (the URI,
  or for account-data rows, which have names only, the content type and names).
-#}
with

source as (

    select * from {{ source('spotify', 'streaming_history') }}

),

renamed as (

    select
        -- stream
        cast(user_id as {{ dbt.type_string() }}) as user_id,
        cast(ts as {{ type_timestamp_tz() }}) as ts,
        {{ utc_date('ts') }} as played_date,
        cast(ms_played as {{ dbt.type_bigint() }}) as ms_played,
        cast(content_type as {{ dbt.type_string() }}) as content_type,
        cast(uri as {{ dbt.type_string() }}) as uri,
        coalesce(
            cast(uri as {{ dbt.type_string() }}),
            cast(audiobook_uri as {{ dbt.type_string() }}),
            'names:' || content_type || ':'
                || coalesce(artist_name, show_name, audiobook_title, '') || ':'
                || coalesce(track_name, episode_name, audiobook_chapter_title, '')
        ) as stream_key,

        -- what was played
        cast(track_id as {{ dbt.type_string() }}) as track_id,
        cast(track_match as {{ dbt.type_string() }}) as track_match,
        cast(track_name as {{ dbt.type_string() }}) as track_name,
        cast(artist_name as {{ dbt.type_string() }}) as artist_name,
        cast(album_name as {{ dbt.type_string() }}) as album_name,
        cast(episode_name as {{ dbt.type_string() }}) as episode_name,
        cast(show_name as {{ dbt.type_string() }}) as show_name,
        cast(audiobook_uri as {{ dbt.type_string() }}) as audiobook_uri,
        cast(audiobook_title as {{ dbt.type_string() }}) as audiobook_title,
        cast(audiobook_chapter_title as {{ dbt.type_string() }}) as audiobook_chapter_title,

        -- how it played
        cast(platform as {{ dbt.type_string() }}) as platform,
        cast(conn_country as {{ dbt.type_string() }}) as conn_country,
        cast(reason_start as {{ dbt.type_string() }}) as reason_start,
        cast(reason_end as {{ dbt.type_string() }}) as reason_end,
        cast(shuffle as boolean) as is_shuffle,
        cast(skipped as boolean) as is_skipped,
        cast(offline as boolean) as is_offline,
        cast(offline_timestamp as {{ type_timestamp_tz() }}) as offline_started_at,
        cast(incognito_mode as boolean) as is_incognito,

        -- audio features
        {{ stg_audio_feature_columns() }}

        -- lineage
        cast(export_file as {{ dbt.type_string() }}) as export_file,
        cast(run_id as {{ dbt.type_string() }}) as run_id,
        cast(source_file as {{ dbt.type_string() }}) as source_file,
        cast(loaded_at as {{ type_timestamp_tz() }}) as loaded_at

    from source

)

select * from renamed
