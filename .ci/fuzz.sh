#!/usr/bin/env bash
# Runs every fuzz target of the parsers of client input for a few seconds
# (FUZZTIME, default 5s each): call names, XML validation, SFTP paths,
# staging names, SSH keys, passwords, CSV reference data, audit text.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"
fuzztime="${FUZZTIME:-5s}"
status=0
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz: $pkg $target ($fuzztime)"
    if ! go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" >/tmp/fuzz.$$.log 2>&1; then
      cat /tmp/fuzz.$$.log; status=1
    fi
  done
done
rm -f /tmp/fuzz.$$.log
exit $status
