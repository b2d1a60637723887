with

source as (

    select * from {{ source('spotify', 'recently_played') }}

),

renamed as (

    select
        -- play
        cast(user_id as {{ dbt.type_string() }}) as user_id,
        cast(played_at as {{ type_timestamp_tz() }}) as played_at,
        {{ utc_date('played_at') }} as played_date,

        -- track
        {{ stg_track_columns() }}

        -- context
        cast(context_type as {{ dbt.type_string() }}) as context_type,
        cast(context_uri as {{ dbt.type_string() }}) as context_uri,

        -- audio features
        {{ stg_audio_feature_columns() }}

        -- lineage
        {{ stg_lineage_columns() }}

    from source

)

select * from renamed
