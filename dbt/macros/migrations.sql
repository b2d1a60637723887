{#-
  Models built before their source gained a column (a warehouse from before `user_id`) cannot be
  extended incrementally (`on_schema_change: fail`): this on-run-start hook drops those relations,
  so the run rebuilds them in full from the raw tables, which keep every row. Idempotent: a
  relation that has the column, or does not exist, is left alone.
-#}
{% macro drop_models_missing_column(column, models) %}
    {% if execute %}
        {% for name in models %}
            {% set relation = adapter.get_relation(
                database=target.database, schema=target.schema, identifier=name) %}
            {% if relation is not none %}
                {% set columns = adapter.get_columns_in_relation(relation)
                    | map(attribute='name') | map('lower') | list %}
                {% if column | lower not in columns %}
                    {% do log('Rebuilding ' ~ relation ~ ' in full: it predates the column ' ~ column, info=true) %}
                    {% do adapter.drop_relation(relation) %}
                {% endif %}
            {% endif %}
        {% endfor %}
    {% endif %}
    select 1
{% endmacro %}
