{#-
  One row per play (user_id, played_at, track_id): every play the recently-played polls saw,
  deduplicated (overlapping poll windows load a play more than once; the first load is kept).
  Incremental: plays loaded since the last build are merged on the key (delete+insert), so a
  play loaded again replaces its own row and is never counted twice.
-#}
{{
    config(
        unique_key=['user_id', 'played_at', 'track_id'],
        incremental_strategy='delete+insert',
    )
}}

with

plays as (

    select * from {{ ref('stg_spotify__recently_played') }}
    {% if is_incremental() %}
    where loaded_at > (
        select coalesce(max(loaded_at), cast('1900-01-01' as {{ type_timestamp_tz() }}))
        from {{ this }}
    )
    {% endif %}
    qualify {{ is_first_load_of_play() }}

),

final as (

    select
        user_id,
        played_at,
        played_date,
        track_id,
        track_name,
        artist_ids,
        artist_names,
        album_id,
        album_name,
        duration_ms,
        is_explicit,
        context_type,
        context_uri,
        'recently_played' as source,
        coalesce(features_source, 'none') <> 'none' as has_audio_features,
        run_id,
        source_file,
        fetched_at,
        loaded_at

    from plays

)

select * from final
