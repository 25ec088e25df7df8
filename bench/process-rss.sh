#!/usr/bin/env bash
# Peak resident memory of `pigp process` answering one call file, in its own
# process, for several file sizes (issue 3: under 64 MiB whatever the size).
# Each size is prepared once by `go run ./bench/process -prepare` (reference
# data + the deposit, not measured), then answered REPS times on a fresh
# copy; /usr/bin/time reports the peak RSS (VmHWM) of each run.
#
#   bench/process-rss.sh                       # SQLite: 10 000, 100 000 and 1 000 000 requests
#   SIZES="100000" REPS=5 bench/process-rss.sh
#   POSTGRES=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable bench/process-rss.sh
#
# With POSTGRES (a URL naming a database, e.g. .../postgres, to connect to),
# each run gets a new database prepared from scratch, pigp_bench_rss,
# dropped afterwards (and on failure). With an even REPS the median is the
# mean of the two middle runs.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES="${SIZES:-10000 100000 1000000}"
REPS="${REPS:-3}"
work=$(mktemp -d /tmp/pigp-rss.XXXXXX)
dropdb_bench() {
  if [ -n "${POSTGRES:-}" ]; then
    PGOPTIONS=--client-min-messages=warning psql -q "$POSTGRES" -c "DROP DATABASE IF EXISTS pigp_bench_rss" 2>/dev/null || true
  fi
}
trap 'rm -rf "$work"; dropdb_bench' EXIT
if [ -n "${POSTGRES:-}" ]; then
  db_url="${POSTGRES%%\?*}"; base="${db_url%/*}"; query="${POSTGRES#"$db_url"}"
  case "$db_url" in
    *://*/*) ;;
    *) echo "POSTGRES must name a database (postgres://user@host:port/dbname)" >&2; exit 2 ;;
  esac
fi
go build -o "$work/pigp" ./cmd/pigp

median() { sort -n | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }

printf '| requests | database | peak RSS of each run (MiB) | median | time of each run (s) |\n|---|---|---|---|---|\n'
for n in $SIZES; do
  rss=() secs=()
  if [ -z "${POSTGRES:-}" ]; then
    go run ./bench/process -demandes "$n" -prepare "$work/prep" >/dev/null
  fi
  for _ in $(seq "$REPS"); do
    if [ -n "${POSTGRES:-}" ]; then
      PGOPTIONS=--client-min-messages=warning psql -q "$POSTGRES" -c "DROP DATABASE IF EXISTS pigp_bench_rss" -c "CREATE DATABASE pigp_bench_rss"
      rm -rf "$work/run"
      go run ./bench/process -demandes "$n" -postgres "$base/pigp_bench_rss$query" -prepare "$work/run" >/dev/null
      out=$(/usr/bin/time -f "%M %e" "$work/pigp" process --data-dir "$work/run" \
        --database-url "$base/pigp_bench_rss$query" 2>&1 >/dev/null | tail -1)
      dropdb_bench
    else
      rm -rf "$work/run" && cp -a "$work/prep" "$work/run"
      out=$(/usr/bin/time -f "%M %e" "$work/pigp" process --data-dir "$work/run" 2>&1 >/dev/null | tail -1)
    fi
    rss+=("$(awk '{printf "%.1f", $1/1024}' <<<"$out")")
    secs+=("$(awk '{print $2}' <<<"$out")")
  done
  rm -rf "$work/prep" "$work/run"
  med=$(printf '%s\n' "${rss[@]}" | median)
  printf '| %s | %s | %s | **%s** | %s |\n' "$n" "$( [ -n "${POSTGRES:-}" ] && echo PostgreSQL || echo SQLite)" "${rss[*]}" "$med" "${secs[*]}"
done
