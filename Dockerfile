# The pipeline's HTTP trigger and daily schedule (`serve --cron`) in a container.
# Not built or run on the project's machines (no Docker engine there): see README, "Docker".
#
#   docker build -t spotify-pipeline .
#   docker compose up -d            # compose.yaml: serve --cron on 127.0.0.1:8000
#   docker compose run --rm serve pipeline --help
FROM denoland/deno:2.9.6

# Python for dbt (the transform step runs `dbt build` from a venv).
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 python3-venv \
  && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Everything below runs as the image's non-root `deno` user (uid 1993), which owns the app, the
# Deno cache (/deno-dir) and the data volume.
RUN mkdir -p /data && chown deno:deno /app /data
USER deno

# The dbt venv, in its own layer: rebuilt only when the lock changes. As lib/dbt/venv.ts does it:
# pip installs the uv the lock pins (hashes required), uv syncs the venv with the lock, and the
# marker (sha256sum format) tells the transform step this lock is synced.
COPY --chown=deno:deno dbt/requirements.lock dbt/requirements.lock
RUN python3 -m venv /app/.venv \
  && awk '/^uv==/ { p = 1 } p { print } p && !/\\$/ { exit }' dbt/requirements.lock > /tmp/uv.txt \
  && /app/.venv/bin/pip install --no-cache-dir --no-deps --require-hashes -r /tmp/uv.txt \
  && /app/.venv/bin/uv pip sync --no-cache --python /app/.venv/bin/python --require-hashes \
    /app/dbt/requirements.lock \
  && sha256sum /app/dbt/requirements.lock > /app/.venv/.requirements.sha256

# npm dependencies, in their own layer: rebuilt only when deno.json or deno.lock change.
COPY --chown=deno:deno deno.json deno.lock ./
RUN deno install --frozen

# The code; then every module of the CLI (steps included) compiled into the cache.
COPY --chown=deno:deno . .
RUN deno cache --frozen scripts/cli.ts

ENV PIPELINE_DATA_DIR=/data \
    PIPELINE_HOST=0.0.0.0 \
    PIPELINE_PORT=8000 \
    PIPELINE_LOG_FORMAT=json \
    DBT_VENV_DIR=/app/.venv
VOLUME /data
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s \
  CMD ["deno", "eval", "const r = await fetch('http://127.0.0.1:8000/healthz'); Deno.exit(r.ok ? 0 : 1)"]

ENTRYPOINT ["deno", "run", "--allow-all", "--unstable-cron", "--cached-only", "--frozen", "scripts/cli.ts"]
CMD ["serve", "--cron"]
