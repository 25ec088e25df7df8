#!/usr/bin/env bash
# govulncheck without vuln.go.dev: the Go module proxy serves
# golang.org/x/vulndb, whose data/osv holds every Go advisory as OSV JSON.
# Its cmd/indexdb turns that folder into the v1 database layout
# (index/db.json, index/modules.json, ID/*.json) that `govulncheck -db
# file://…` reads. Pin VULNDB_VERSION to a newer pseudo-version to refresh.
#
# Standard-library advisories are fixed by Go point releases: the scan runs
# with the toolchain the releases are built with (GO_RELEASE_TOOLCHAIN,
# downloaded from the proxy like a module), which must be at least the
# "Fixed in" version of every standard-library finding.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"

VULNDB_VERSION="${VULNDB_VERSION:-v0.0.0-20261105234957-e22db6528018}"
GOVULNCHECK_VERSION="${GOVULNCHECK_VERSION:-v1.9.0}"
GO_RELEASE_TOOLCHAIN="${GO_RELEASE_TOOLCHAIN:-go1.26.10}"
cache="${PIGP_VULNDB_CACHE:-$HOME/.cache/pigp-vulndb}/$VULNDB_VERSION"

if ! command -v govulncheck >/dev/null || ! govulncheck -version 2>/dev/null | grep -q "$GOVULNCHECK_VERSION"; then
  echo "govulncheck: installing golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION"
  GOFLAGS=-mod=mod go install "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION"
fi

if [ ! -f "$cache/index/db.json" ]; then
  echo "govulncheck: building the local vulnerability database from golang.org/x/vulndb@$VULNDB_VERSION"
  dir=$(go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$dir/data/osv" ] || { echo "govulncheck: no data/osv in $dir"; exit 1; }
  rm -rf "$cache.tmp"
  mkdir -p "$(dirname "$cache")"
  go run "golang.org/x/vulndb/cmd/indexdb@$VULNDB_VERSION" -vulns "$dir/data/osv" -out "$cache.tmp"
  rm -rf "$cache"
  mv "$cache.tmp" "$cache"
fi

echo "govulncheck: database $VULNDB_VERSION ($(ls "$cache/ID" | wc -l) advisories), toolchain $GO_RELEASE_TOOLCHAIN"
GOTOOLCHAIN="$GO_RELEASE_TOOLCHAIN" govulncheck -db "file://$cache" ./...
