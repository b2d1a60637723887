{#-
  Models built before their source gained a column (a warehouse from before `user_id`) cannot be
  extended incrementally (`on_schema_change: fail`): this on-run-start hook drops such a model's
  relation (and commits: dbt-duckdb rolls the hooks' transaction back), so the run rebuilds it in
  full from the raw tables, which keep every row. Idempotent: a relation that has the column, or
  does not exist, is left alone. The hook's own statement is `select 1`.
-#}
{% macro drop_model_missing_column(column, name) %}
    {% if execute %}
        {% set relation = adapter.get_relation(
            database=target.database, schema=target.schema, identifier=name) %}
        {% if relation is not none %}
            {% set columns = adapter.get_columns_in_relation(relation)
                | map(attribute='name') | map('lower') | list %}
            {% if column | lower not in columns %}
                {% do log('Rebuilding ' ~ relation ~ ' in full: it predates the column ' ~ column, info=true) %}
                {% do adapter.drop_relation(relation) %}
                {#- dbt-duckdb rolls the hooks' transaction back: commit now (Snowflake autocommits) -#}
                {% if target.type == 'duckdb' %}{% do adapter.commit() %}{% endif %}
            {% endif %}
        {% endif %}
    {% endif %}
    {% do return('select 1') %}
{% endmacro %}
