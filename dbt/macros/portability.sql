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
