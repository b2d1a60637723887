{#- Types and date parts that differ between DuckDB (local) and Snowflake (prod). -#}

{#- A timestamp with time zone. -#}
{% macro type_timestamp_tz() %}
    {{ return(adapter.dispatch('type_timestamp_tz', 'spotify_pipeline')()) }}
{% endmacro %}

{% macro default__type_timestamp_tz() %}timestamp with time zone{% endmacro %}
{% macro duckdb__type_timestamp_tz() %}timestamptz{% endmacro %}
{% macro snowflake__type_timestamp_tz() %}timestamp_tz{% endmacro %}

{#- A double-precision float (dbt.type_float() is single precision on DuckDB). -#}
{% macro type_double() %}
    {{ return(adapter.dispatch('type_double', 'spotify_pipeline')()) }}
{% endmacro %}

{% macro default__type_double() %}double precision{% endmacro %}
{% macro duckdb__type_double() %}double{% endmacro %}
{% macro snowflake__type_double() %}float{% endmacro %}

{#- Monday of the ISO week of a date. -#}
{% macro iso_week_start(column) %}
    {{ return(adapter.dispatch('iso_week_start', 'spotify_pipeline')(column)) }}
{% endmacro %}

{% macro default__iso_week_start(column) %}cast(date_trunc('week', {{ column }}) as date){% endmacro %}
{% macro snowflake__iso_week_start(column) %}cast(dateadd(day, 1 - dayofweekiso({{ column }}), {{ column }}) as date){% endmacro %}

{#- ISO-8601 week-numbering year of a date (differs from the calendar year around New Year). -#}
{% macro iso_year(column) %}
    {{ return(adapter.dispatch('iso_year', 'spotify_pipeline')(column)) }}
{% endmacro %}

{% macro default__iso_year(column) %}cast(extract(isoyear from {{ column }}) as integer){% endmacro %}
{% macro snowflake__iso_year(column) %}yearofweekiso({{ column }}){% endmacro %}

{#- ISO-8601 week number (1..53) of a date. -#}
{% macro iso_week(column) %}
    {{ return(adapter.dispatch('iso_week', 'spotify_pipeline')(column)) }}
{% endmacro %}

{% macro default__iso_week(column) %}cast(extract(week from {{ column }}) as integer){% endmacro %}
{% macro snowflake__iso_week(column) %}weekiso({{ column }}){% endmacro %}

{#- The UTC calendar date of a timestamp with time zone (never the session's time zone). -#}
{% macro utc_date(column) %}
    {{ return(adapter.dispatch('utc_date', 'spotify_pipeline')(column)) }}
{% endmacro %}

{% macro default__utc_date(column) %}cast(timezone('UTC', {{ column }}) as date){% endmacro %}
{% macro snowflake__utc_date(column) %}cast(convert_timezone('UTC', {{ column }}) as date){% endmacro %}

{#-
  `select <keep columns>, <one element of array column> as <as_name> from <relation>`: one row
  per element (rows with an empty or null array give none).
-#}
{% macro unnest_array(relation, column, as_name, keep) %}
    {{ return(adapter.dispatch('unnest_array', 'spotify_pipeline')(relation, column, as_name, keep)) }}
{% endmacro %}

{% macro default__unnest_array(relation, column, as_name, keep) %}
    select {% for k in keep %}{{ k }}, {% endfor %}unnest({{ column }}) as {{ as_name }}
    from {{ relation }}
{% endmacro %}

{% macro snowflake__unnest_array(relation, column, as_name, keep) %}
    select {% for k in keep %}r.{{ k }}, {% endfor %}cast(f.value as varchar) as {{ as_name }}
    from {{ relation }} as r, lateral flatten(input => r.{{ column }}) as f
{% endmacro %}

{#- The type of a list of strings (raw artist_ids/artist_names). -#}
{% macro string_array_type() %}
    {{ return(adapter.dispatch('string_array_type', 'spotify_pipeline')()) }}
{% endmacro %}

{% macro default__string_array_type() %}varchar[]{% endmacro %}
{% macro snowflake__string_array_type() %}array{% endmacro %}

{#- The first string of a list (null for an empty or null list). -#}
{% macro array_first(column) %}
    {{ return(adapter.dispatch('array_first', 'spotify_pipeline')(column)) }}
{% endmacro %}

{% macro default__array_first(column) %}{{ column }}[1]{% endmacro %}
{% macro snowflake__array_first(column) %}{{ column }}[0]::varchar{% endmacro %}
