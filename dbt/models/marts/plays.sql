{#-
  One row per play of music, from both sources:

  - `recently_played` (the API polls): overlapping poll windows load a play more than once, the
    first load is kept;
  - `streaming_history` (the privacy export, `deno task import`): each (user_id, ts, stream_key)
    once (the longest ms_played); an account-data row (names only, to the minute) is left out
    when an extended-history row of the same track ended in the same minute.

  A play both saw is one play (`source = 'both'`). `played_at` (API) and `ts` (export) both mark
  the end of the play — `ts` to the second, `played_at` to the millisecond — so a poll's play and
  an export stream are the same play when the user and track are the same and the two times are
  at most `play_match_tolerance_seconds` apart (default 10); each play pairs once, nearest first.
  The API's `played_at` is kept for the pair.

  `is_counted_stream`: ms_played ≥ 30 s, as Spotify counts streams (null when only the API saw
  the play: it does not say how long it played). A table, rebuilt in full.
-#}
{{ config(materialized='table') }}

{%- set tolerance = var('play_match_tolerance_seconds', 10) | int %}

with

api as (

    select * from {{ ref('stg_spotify__recently_played') }}
    qualify {{ is_first_load_of_play() }}

),

export_streams as (

    select * from {{ ref('stg_spotify__streaming_history') }}
    where content_type = 'track'
    qualify row_number() over (
        partition by user_id, ts, stream_key
        order by ms_played desc, loaded_at, source_file
    ) = 1

),

export as (

    select e.*
    from export_streams as e
    where e.uri is not null
        or not exists (
            select 1
            from export_streams as x
            where x.uri is not null
                and x.user_id = e.user_id
                and x.track_name = e.track_name
                and x.artist_name = e.artist_name
                and x.ts >= e.ts
                and x.ts < {{ dbt.dateadd('minute', 1, 'e.ts') }}
        )

),

candidates as (

    select
        api.user_id,
        api.played_at,
        api.track_id,
        export.ts,
        export.stream_key,
        abs({{ dbt.datediff('export.ts', 'api.played_at', 'millisecond') }}) as gap_ms
    from api
    inner join export
        on export.user_id = api.user_id
        and export.track_id = api.track_id
        and export.ts >= {{ dbt.dateadd('second', -tolerance, 'api.played_at') }}
        and export.ts <= {{ dbt.dateadd('second', tolerance, 'api.played_at') }}

),

pairs as (

    select * from candidates
    qualify row_number() over (
            partition by user_id, played_at, track_id order by gap_ms, ts, stream_key
        ) = 1
        and row_number() over (
            partition by user_id, ts, stream_key order by gap_ms, played_at
        ) = 1

),

from_api as (

    select
        api.user_id,
        api.played_at,
        api.played_date,
        api.track_id,
        api.track_id as play_key,
        api.track_name,
        api.artist_ids,
        api.artist_names,
        {{ array_first('api.artist_names') }} as artist_name,
        api.album_id,
        api.album_name,
        api.duration_ms,
        export.ms_played,
        api.is_explicit,
        api.context_type,
        api.context_uri,
        case when export.ts is null then 'recently_played' else 'both' end as source,
        coalesce(api.features_source, 'none') <> 'none' as has_audio_features,
        api.run_id,
        api.source_file,
        api.fetched_at,
        api.loaded_at
    from api
    left join pairs
        on pairs.user_id = api.user_id
        and pairs.played_at = api.played_at
        and pairs.track_id = api.track_id
    left join export
        on export.user_id = pairs.user_id
        and export.ts = pairs.ts
        and export.stream_key = pairs.stream_key

),

from_export as (

    select
        export.user_id,
        export.ts as played_at,
        export.played_date,
        export.track_id,
        case when export.uri is not null then export.track_id else export.stream_key end as play_key,
        export.track_name,
        cast(null as {{ string_array_type() }}) as artist_ids,
        cast(null as {{ string_array_type() }}) as artist_names,
        export.artist_name,
        cast(null as {{ dbt.type_string() }}) as album_id,
        export.album_name,
        cast(null as {{ dbt.type_bigint() }}) as duration_ms,
        export.ms_played,
        cast(null as boolean) as is_explicit,
        cast(null as {{ dbt.type_string() }}) as context_type,
        cast(null as {{ dbt.type_string() }}) as context_uri,
        'export' as source,
        coalesce(export.features_source, 'none') <> 'none' as has_audio_features,
        export.run_id,
        export.source_file,
        cast(null as {{ type_timestamp_tz() }}) as fetched_at,
        export.loaded_at
    from export
    left join pairs
        on pairs.user_id = export.user_id
        and pairs.ts = export.ts
        and pairs.stream_key = export.stream_key
    where pairs.ts is null

),

unioned as (

    select * from from_api
    union all
    select * from from_export

),

final as (

    select
        *,
        case when ms_played is null then null else ms_played >= 30000 end as is_counted_stream
    from unioned

)

select * from final
