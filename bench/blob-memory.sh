#!/usr/bin/env bash
# Memory of a large object put and read back through each blob backend
# (issue 16): the filesystem store and the S3 store (default sizes) against
# versitygw on 127.0.0.1. Runs BenchmarkBlobMemory (blob/s3/bench_test.go)
# once per size and prints a Markdown table: throughput and this process's
# peak heap and peak RSS in each phase. Flat memory = the same peaks at
# every size (no whole-file buffering).
#
#   bench/blob-memory.sh                          # 256 MiB and 1 GiB
#   SIZES_MIB="1024 4096" bench/blob-memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES_MIB="${SIZES_MIB:-256 1024}"
bash .ci/versitygw.sh

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "software: pigp $(git rev-parse --short HEAD), $(go version | cut -d' ' -f3)"
echo
printf '| backend | size | put MB/s | get MB/s | put peak heap MiB | get peak heap MiB | put peak RSS MiB | get peak RSS MiB |\n|---|---:|---:|---:|---:|---:|---:|---:|\n'
for mib in $SIZES_MIB; do
  PIGP_BENCH_BLOB_SIZE=$((mib << 20)) go test -run '^$' -bench BlobMemory -benchtime 1x -timeout 30m ./blob/s3/ |
    awk -v mib="$mib" '/^BenchmarkBlobMemory\// {
      name = $1; sub(/^BenchmarkBlobMemory\//, "", name); sub(/-[0-9]+$/, "", name)
      for (i = 2; i < NF; i++) m[$(i+1)] = $i
      printf "| %s | %d MiB | %.0f | %.0f | %.1f | %.1f | %.1f | %.1f |\n", name, mib,
        m["put-MB/s"], m["get-MB/s"], m["put-peak-heap-MiB"], m["get-peak-heap-MiB"], m["put-peak-RSS-MiB"], m["get-peak-RSS-MiB"]
    }'
done
