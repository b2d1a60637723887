with

source as (

    select * from {{ source('spotify', 'top_artists') }}

),

renamed as (

    select
        -- snapshot
        cast(user_id as {{ dbt.type_string() }}) as user_id,
        cast(snapshot_date as date) as snapshot_date,
        cast(time_range as {{ dbt.type_string() }}) as time_range,
        cast(rank as integer) as rank,

        -- artist
        cast(artist_id as {{ dbt.type_string() }}) as artist_id,
        cast(artist_name as {{ dbt.type_string() }}) as artist_name,
        genres,
        cast(followers as {{ dbt.type_bigint() }}) as followers,
        cast(popularity as integer) as popularity,

        -- lineage
        {{ stg_lineage_columns() }}

    from source

)

select * from renamed
