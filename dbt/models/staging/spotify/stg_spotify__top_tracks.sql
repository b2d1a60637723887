with

source as (

    select * from {{ source('spotify', 'top_tracks') }}

),

renamed as (

    select
        -- snapshot
        cast(user_id as {{ dbt.type_string() }}) as user_id,
        cast(snapshot_date as date) as snapshot_date,
        cast(time_range as {{ dbt.type_string() }}) as time_range,
        cast(rank as integer) as rank,

        -- track
        {{ stg_track_columns() }}

        -- audio features
        {{ stg_audio_feature_columns() }}

        -- lineage
        {{ stg_lineage_columns() }}

    from source

)

select * from renamed
