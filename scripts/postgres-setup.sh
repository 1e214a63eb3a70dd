#!/bin/sh
# Starts a local PostgreSQL for the stratos-store tests and prints the URL to
# export as STRATOS_TEST_POSTGRES. Idempotent; run as root on Debian 12 (apt).
#
#   eval "$(scripts/postgres-setup.sh | tail -n 1)"
#   cargo test -p stratos-store
set -eu

DB_USER=stratos
DB_PASSWORD=stratos
DB_NAME=stratos
PORT=5432

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2
fi

# The newest installed major version (15 on Debian 12).
VERSION=$(ls /usr/lib/postgresql | sort -n | tail -n 1)

if [ ! -d "/etc/postgresql/$VERSION/main" ]; then
    pg_createcluster --port "$PORT" "$VERSION" main >&2
fi

if ! pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" { print $4 }' | grep -q online; then
    pg_ctlcluster "$VERSION" main start >&2
fi

# Wait until the server accepts connections.
i=0
until su postgres -c "psql -p $PORT -tAc 'SELECT 1'" >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -ge 30 ]; then
        echo "PostgreSQL $VERSION did not start; see /var/log/postgresql/postgresql-$VERSION-main.log" >&2
        exit 1
    fi
    sleep 1
done

if [ "$(su postgres -c "psql -p $PORT -tAc \"SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'\"")" != "1" ]; then
    su postgres -c "psql -p $PORT -c \"CREATE USER $DB_USER PASSWORD '$DB_PASSWORD' SUPERUSER\"" >&2
fi

if [ "$(su postgres -c "psql -p $PORT -tAc \"SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'\"")" != "1" ]; then
    su postgres -c "createdb -p $PORT -O $DB_USER $DB_NAME" >&2
fi

echo "export STRATOS_TEST_POSTGRES=postgres://$DB_USER:$DB_PASSWORD@127.0.0.1:$PORT/$DB_NAME"
