#!/bin/sh
# MLflow's backend database beside Persona's (the name `persona prod up` uses: <db>_mlflow).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -c "CREATE DATABASE \"${POSTGRES_DB}_mlflow\""
