{#-
  True for the rows of the latest load of each (user_id, snapshot_date, time_range): when a day was
  loaded more than once (a re-run with new data), the last load wins as a whole — its rows
  replace every row of earlier loads of that day, including ranks the new load no longer has.
  Every row of one load shares loaded_at, run_id and source_file. Use in a `qualify` clause.
-#}
{% macro is_latest_load() %}
    dense_rank() over (
        partition by user_id, snapshot_date, time_range
        order by loaded_at desc, run_id desc, source_file desc
    ) = 1
{% endmacro %}

{#-
  In an incremental run: the snapshot dates that received a load since the target was last
  built (any raw row newer than the newest loaded_at in the target). Those dates are recomputed
  from all their rows, so a re-run day replaces that day's rows; other dates are not read.
-#}
{% macro snapshot_dates_loaded_since(relation, target_loaded_at_column='loaded_at') %}
    select distinct snapshot_date
    from {{ relation }}
    where loaded_at > (
        select coalesce(max({{ target_loaded_at_column }}), cast('1900-01-01' as {{ type_timestamp_tz() }}))
        from {{ this }}
    )
{% endmacro %}

{#-
  True for one row of each play (user_id, played_at, track_id): overlapping polls load a play
  in more than one file; the first load of it is kept. Use in a `qualify` clause.
-#}
{% macro is_first_load_of_play() %}
    row_number() over (
        partition by user_id, played_at, track_id
        order by loaded_at, source_file, run_id
    ) = 1
{% endmacro %}
