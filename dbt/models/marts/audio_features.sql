{#-
  One row per (user_id, track_id) of the user's top tracks that has audio features: the latest
  observation (the most recently loaded row with features). Incremental: rows loaded since the
  last build replace their tracks' rows (delete+insert on user_id, track_id); they are always
  the latest observation.
-#}
{{
    config(
        unique_key=['user_id', 'track_id'],
        incremental_strategy='delete+insert',
    )
}}

with

top_tracks as (

    select * from {{ ref('stg_spotify__top_tracks') }}
    where coalesce(features_source, 'none') <> 'none'
    {% if is_incremental() %}
        and loaded_at > (
            select coalesce(max(loaded_at), cast('1900-01-01' as {{ type_timestamp_tz() }}))
            from {{ this }}
        )
    {% endif %}

),

latest_observation as (

    select * from top_tracks
    qualify row_number() over (
        partition by user_id, track_id
        order by loaded_at desc, snapshot_date desc, time_range, rank
    ) = 1

),

final as (

    select
        user_id,
        track_id,
        track_name,
        artist_names,
        danceability,
        energy,
        key,
        loudness,
        mode,
        speechiness,
        acousticness,
        instrumentalness,
        liveness,
        valence,
        tempo,
        time_signature,
        features_source,
        match_method,
        snapshot_date as observed_on,
        run_id,
        loaded_at

    from latest_observation

)

select * from final
