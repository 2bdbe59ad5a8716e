#!/bin/sh
# Runs once, when the PostgreSQL volume is first initialised (docker-entrypoint-initdb.d):
# a read-only role for Grafana's customer-health panels. Tables created later by
# `tend migrate` are covered by the default privileges.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE "$GRAFANA_DB_USER" LOGIN PASSWORD '$GRAFANA_DB_PASSWORD';
GRANT CONNECT ON DATABASE "$POSTGRES_DB" TO "$GRAFANA_DB_USER";
GRANT USAGE ON SCHEMA public TO "$GRAFANA_DB_USER";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO "$GRAFANA_DB_USER";
ALTER DEFAULT PRIVILEGES FOR ROLE "$POSTGRES_USER" IN SCHEMA public
    GRANT SELECT ON TABLES TO "$GRAFANA_DB_USER";
SQL
