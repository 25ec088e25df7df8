#!/usr/bin/env bash
# Builds versitygw (github.com/versity/versitygw, Apache-2.0), the real
# S3-compatible server that the blob/s3 tests start on 127.0.0.1 with its
# posix backend on a temporary directory (issue 16). The build takes minutes
# on two cores, so the binary is cached, keyed by version:
#
#   ${PIGP_TOOLS_DIR:-~/.cache/pigp-tools}/versitygw-$VERSITYGW_VERSION/versitygw
#
# The tests look in the same place (or at PIGP_VERSITYGW, a binary path);
# they skip when it is missing, and fail when CI=true. Idempotent: does
# nothing when the cached binary answers --version.
set -euo pipefail
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"

VERSITYGW_VERSION="${VERSITYGW_VERSION:-v1.8.0}"
dir="${PIGP_TOOLS_DIR:-$HOME/.cache/pigp-tools}/versitygw-$VERSITYGW_VERSION"
bin="$dir/versitygw"

if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
  exit 0
fi
echo "versitygw: building github.com/versity/versitygw@$VERSITYGW_VERSION into $dir (takes minutes)"
rm -rf "$dir.tmp"
mkdir -p "$dir.tmp"
# Outside any module, so that the project's go.mod is not consulted;
# CGO_ENABLED=0: a static binary, like pigp's own builds.
(cd "$dir.tmp" && CGO_ENABLED=0 GOFLAGS=-mod=mod GOBIN="$dir.tmp" \
  go install -trimpath "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION")
"$dir.tmp/versitygw" --version >/dev/null
rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "versitygw: $("$bin" --version 2>&1 | head -1)"
