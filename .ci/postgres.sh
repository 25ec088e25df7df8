#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 for the tests.
# Where the machine already runs one with trust authentication (as CI's does)
# nothing changes; on a fresh Debian machine the cluster is started and the
# postgres role gets a password, written to .ci/postgres.env for the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -f .ci/postgres.env
url="postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

ready() { pg_isready -q -h 127.0.0.1 -p 5432; }
if ! ready; then
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
  if [ -z "$version" ]; then
    echo "ci: no PostgreSQL cluster found under /etc/postgresql" >&2; exit 1
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do ready && break; sleep 1; done
  ready || { echo "ci: PostgreSQL did not start" >&2; exit 1; }
fi
if ! psql "$url" -Atqc 'select 1' >/dev/null 2>&1; then
  # Password authentication on TCP (Debian's default): give the role one.
  su postgres -c "psql -q -c \"ALTER ROLE postgres PASSWORD 'pigp-ci'\"" >/dev/null
  url="postgres://postgres:pigp-ci@127.0.0.1:5432/postgres?sslmode=disable"
  psql "$url" -Atqc 'select 1' >/dev/null
  echo "export PIGP_TEST_POSTGRES_URL='$url'" > .ci/postgres.env
fi
echo "ci: PostgreSQL ready at 127.0.0.1:5432"
