#!/usr/bin/env bash
# SFTP transfers with the S3 store against the filesystem store (issue 16).
#
# Starts two `pigp serve` on 127.0.0.1, one with storage.kind fs (DATA_DIR/store) and one with
# storage.kind s3 on a versitygw started here (posix backend in the work directory), and
# moves one random file (1 GiB by default) with the OpenSSH `sftp` client (batch mode, ed25519
# key): an upload to /depot and a download from /retrait per server and round. Rounds are
# interleaved and alternate the order (odd rounds fs first, even rounds s3 first), so that
# neither store always runs first or on a quieter machine. Each transfer's peak RSS of the
# server (VmHWM, reset through /proc/PID/clear_refs before it) shows whether memory stays flat.
#
# Checks: every download's SHA-256; every deposit's size and SHA-256 in /historique/depots.csv;
# with S3, that the objects are in the bucket (versitygw's directory) with the file's SHA-256
# and that DATA_DIR/store/objects of the S3 server stays empty.
#
# Prints a Markdown table: per store and direction the median time and MB/s with min–max, the
# median of the per-round ratios S3/fs (throughput; 1.00 = as fast) with min–max, and the peak
# RSS (median and max over the rounds). It writes nothing into bench/RESULTS.md: paste the table
# there from a run on a quiet machine.
#
#   bench/s3-vs-fs.sh                       # 1 GiB, 5 rounds, fs and s3
#   SIZE_MB=64 ROUNDS=2 bench/s3-vs-fs.sh   # quick check
#   STORES=fs SIZE_MB=64 bench/s3-vs-fs.sh  # the filesystem store alone (no versitygw)
#
# Environment:
#   SIZE_MB=1024   size of the file in MiB
#   ROUNDS=5       interleaved rounds (at least 5 for the reported figures)
#   STORES="fs s3" stores measured
#   CIPHER=aes128-gcm@openssh.com
#   TRANSFER_TIMEOUT=900  seconds allowed for one transfer
#   PIGP_VERSITYGW       versitygw binary (default: the one .ci/versitygw.sh builds and caches)
#   KEEP_WORK=0          1 keeps the work directory (logs, data dirs)
#   BENCH_TMPDIR=$TMPDIR where the work directory goes (needs about (3 + 2 × ROUNDS) × SIZE)
set -euo pipefail

SIZE_MB=${SIZE_MB:-1024}
ROUNDS=${ROUNDS:-5}
STORES=${STORES:-fs s3}
CIPHER=${CIPHER:-aes128-gcm@openssh.com}
TRANSFER_TIMEOUT=${TRANSFER_TIMEOUT:-900}
KEEP_WORK=${KEEP_WORK:-0}
BENCH_TMPDIR=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}

SIRET=22940028800010
LOGIN=bench-xt
RESP_NAME=2026_${SIRET}_20261128101500_REP.xml
BUCKET=pigp-bench
S3_ACCESS=pigpbench
S3_SECRET=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf '[s3-vs-fs %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	printf '[s3-vs-fs] ERROR: %s\n' "$*" >&2
	exit 1
}

[[ $SIZE_MB =~ ^[1-9][0-9]*$ ]] || die "SIZE_MB must be a positive integer, got '$SIZE_MB'"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got '$ROUNDS'"
for s in $STORES; do [[ $s == fs || $s == s3 ]] || die "STORES holds fs and/or s3, got '$STORES'"; done
for c in go sftp ssh-keygen sha256sum timeout awk curl; do command -v "$c" >/dev/null || die "$c not found"; done
USE_S3=0
[[ " $STORES " == *" s3 "* ]] && USE_S3=1

# ---------------------------------------------------------------- workspace and cleanup
WORK=$(mktemp -d "$BENCH_TMPDIR/pigp-s3-vs-fs.XXXXXX")
declare -A PID=()
VGW_PID=

stop_pid() { # pid name
	local pid=$1 i
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	local rc=$? s
	set +e
	trap - EXIT INT TERM
	for s in "${!PID[@]}"; do stop_pid "${PID[$s]}" "pigp $s"; done
	stop_pid "$VGW_PID" versitygw
	if ((rc != 0)); then
		for f in "$WORK"/pigp-*.log "$WORK"/versitygw.log "$WORK"/last-sftp.log; do
			[[ -s $f ]] && { echo "--- last lines of $(basename "$f"):" >&2; tail -n 15 "$f" >&2; }
		done
	fi
	if [[ $KEEP_WORK == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

nstores=$(wc -w <<<"$STORES")
avail_mb=$(df -Pm "$WORK" | awk 'NR==2{print $4}')
need_mb=$((SIZE_MB * (3 + nstores * (ROUNDS + 1))))
((avail_mb > need_mb)) || die "not enough space in $BENCH_TMPDIR: $avail_mb MiB free, about $need_mb MiB needed (set BENCH_TMPDIR)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # port pid name
	local i
	for i in $(seq 300); do
		kill -0 "$2" 2>/dev/null || die "$3 exited during start-up"
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	die "$3 does not listen on 127.0.0.1:$1 after 30 s"
}

# ---------------------------------------------------------------- build
log "building pigp"
(cd "$REPO" && go build -o "$WORK/pigp" ./cmd/pigp) || die "go build failed"
PIGP_COMMIT=$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
PIGP_DIRTY=$(cd "$REPO" && { git status --porcelain 2>/dev/null | grep -q . && echo " (with uncommitted changes)"; } || true)

# ---------------------------------------------------------------- versitygw
if ((USE_S3)); then
	VGW=${PIGP_VERSITYGW:-}
	if [[ -z $VGW ]]; then
		bash "$REPO/.ci/versitygw.sh" >&2 || die ".ci/versitygw.sh failed"
		VGW_VERSION=$(awk -F'"' '/^const VersityGWVersion/{print $2}' "$REPO/internal/testutil/s3.go")
		VGW=${PIGP_TOOLS_DIR:-$HOME/.cache/pigp-tools}/versitygw-$VGW_VERSION/versitygw
	fi
	[[ -x $VGW ]] || die "versitygw not found at $VGW"
	VGW_PORT=$(free_port)
	mkdir -p "$WORK/s3"
	VGW_LOG_LEVEL=silent "$VGW" --access "$S3_ACCESS" --secret "$S3_SECRET" --region us-east-1 \
		--port "127.0.0.1:$VGW_PORT" --quiet posix "$WORK/s3" >"$WORK/versitygw.log" 2>&1 &
	VGW_PID=$!
	wait_port "$VGW_PORT" "$VGW_PID" versitygw
	S3_ENDPOINT=http://127.0.0.1:$VGW_PORT
	curl -fsS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$S3_ACCESS:$S3_SECRET" \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -X PUT "$S3_ENDPOINT/$BUCKET" \
		>"$WORK/bucket.log" 2>&1 || die "create bucket: $(cat "$WORK/bucket.log")"
	log "versitygw on $S3_ENDPOINT (pid $VGW_PID), bucket $BUCKET"
fi

# ---------------------------------------------------------------- data, key, servers
log "generating a $SIZE_MB MiB random file"
DATA=$WORK/data.bin
head -c "${SIZE_MB}M" /dev/urandom >"$DATA"
SIZE_BYTES=$(stat -c %s "$DATA")
DATA_SHA=$(sha256sum "$DATA" | awk '{print $1}')
ssh-keygen -q -t ed25519 -N '' -C pigp-bench -f "$WORK/key"

declare -A PORT=()
# store_env STORE: the environment of that store's pigp (one data directory each).
store_env() {
	local s=$1
	echo "PIGP_DATA_DIR=$WORK/data-$s"
	echo "PIGP_SFTP_LISTEN=127.0.0.1:${PORT[$s]}"
	echo "PIGP_HTTP_LISTEN=off"
	echo "PIGP_MAX_UPLOAD_SIZE=$(((SIZE_MB + 1) * 1024 * 1024))"
	echo "PIGP_SHUTDOWN_TIMEOUT=5s"
	echo "PIGP_LOG_LEVEL=info"
	# Deposits are random bytes: processing them would compete for CPU. 1 January 00:00:00.
	echo "PIGP_PROCESSING_SCHEDULE=0 0 0 1 1 *"
	echo "PIGP_STORAGE_KIND=$s"
	if [[ $s == s3 ]]; then
		echo "PIGP_S3_ENDPOINT=$S3_ENDPOINT"
		echo "PIGP_S3_BUCKET=$BUCKET"
		echo "PIGP_S3_REGION=us-east-1"
		echo "PIGP_S3_ACCESS_KEY=$S3_ACCESS"
		echo "PIGP_S3_SECRET_KEY=$S3_SECRET"
		echo "PIGP_S3_PATH_STYLE=true"
	fi
}
pigp_in() { # store args...
	local s=$1
	shift
	local -a envs=()
	mapfile -t envs < <(store_env "$s")
	env -u PIGP_DATABASE_URL "${envs[@]}" timeout 600 "$WORK/pigp" "$@"
}

for s in $STORES; do
	PORT[$s]=$(free_port)
	log "setting up pigp ($s store)"
	{
		pigp_in "$s" org add --siret "$SIRET" --name Bench &&
			pigp_in "$s" user add --login "$LOGIN" --siret "$SIRET" --name "Bench User" --email b@example.fr &&
			pigp_in "$s" user key add --login "$LOGIN" --file "$WORK/key.pub" &&
			pigp_in "$s" storage check &&
			pigp_in "$s" response publish --siret "$SIRET" --name "$RESP_NAME" "$DATA"
	} >"$WORK/setup-$s.log" 2>&1 || die "pigp setup ($s) failed: $(tail -n 5 "$WORK/setup-$s.log")"
	mapfile -t envs < <(store_env "$s")
	env -u PIGP_DATABASE_URL "${envs[@]}" "$WORK/pigp" serve >"$WORK/pigp-$s.log" 2>&1 &
	PID[$s]=$!
	wait_port "${PORT[$s]}" "${PID[$s]}" "pigp serve ($s)"
	log "pigp ($s store) on 127.0.0.1:${PORT[$s]} (pid ${PID[$s]})"
done

# The S3 server must really hold its contents in the bucket: a build without the S3 wiring
# would quietly use DATA_DIR/store.
objects_in_bucket() { find "$WORK/s3/$BUCKET" -type f ! -path '*/.sgwtmp/*' 2>/dev/null | wc -l; }
objects_on_disk() { find "$WORK/data-$1/store/objects" -type f 2>/dev/null | wc -l; }
if ((USE_S3)); then
	if (($(objects_in_bucket) < 1 || $(objects_on_disk s3) > 0)); then
		die "the s3 server's published response is not in the bucket ($(objects_in_bucket) object(s)) but in DATA_DIR/store ($(objects_on_disk s3) file(s)): this build does not store contents in S3 yet"
	fi
fi

# ---------------------------------------------------------------- transfers
SFTP_OPTS=(-q -o "Ciphers=$CIPHER" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
	-o LogLevel=ERROR -o IdentitiesOnly=yes -o IdentityFile="$WORK/key" -o BatchMode=yes
	-o ConnectTimeout=10)
run_sftp() { # port batch-file; sets ELAPSED
	local tf=$WORK/time.out TIMEFORMAT='%R'
	if ! { time timeout "$TRANSFER_TIMEOUT" sftp "${SFTP_OPTS[@]}" -P "$1" -b "$2" "$LOGIN@127.0.0.1" \
		>"$WORK/last-sftp.log" 2>&1; } 2>"$tf"; then
		die "sftp to port $1 failed ($(tr '\n' ' ' <"$2")): $(tail -n 5 "$WORK/last-sftp.log")"
	fi
	ELAPSED=$(cat "$tf")
}
hwm_kib() { awk '/^VmHWM/{print $2}' "/proc/$1/status"; }
rss_kib() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
reset_hwm() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }

NAME_BASE=$(($(date +%s) - 3600))
NAME_SEQ=0
next_call_name() {
	local ts=$((NAME_BASE + NAME_SEQ))
	NAME_SEQ=$((NAME_SEQ + 1))
	CALL_NAME="$(TZ=Europe/Paris date -d "@$ts" +%Y)_${SIRET}_$(TZ=Europe/Paris date -d "@$ts" +%Y%m%d%H%M%S).xml"
}

RAW=$WORK/raw.txt # store direction round seconds peak_rss_kib
: >"$RAW"
declare -A UPLOADED=()
HWM_RESET=1
reset_hwm "${PID[${STORES%% *}]}"
[[ $(hwm_kib "${PID[${STORES%% *}]}") -le $(($(rss_kib "${PID[${STORES%% *}]}") + 1024)) ]] || HWM_RESET=0
((HWM_RESET)) || log "WARNING: /proc/PID/clear_refs does not reset VmHWM here: peaks are since the server started"
declare -A BASE_RSS=()
for s in $STORES; do BASE_RSS[$s]=$(rss_kib "${PID[$s]}"); done

measure() { # store direction round
	local s=$1 dir=$2 round=$3 pid=${PID[$1]} dl=$WORK/download.bin
	rm -f "$dl"
	if [[ $dir == upload ]]; then
		next_call_name
		UPLOADED[$s]+="$CALL_NAME "
		printf 'put %s /depot/%s\n' "$DATA" "$CALL_NAME" >"$WORK/batch"
	else
		printf 'get /retrait/%s %s\n' "$RESP_NAME" "$dl" >"$WORK/batch"
	fi
	sync
	reset_hwm "$pid"
	run_sftp "${PORT[$s]}" "$WORK/batch"
	local peak
	peak=$(hwm_kib "$pid")
	if [[ $dir == download ]]; then
		[[ $(stat -c %s "$dl") == "$SIZE_BYTES" ]] || die "$s download: wrong size"
		[[ $(sha256sum "$dl" | awk '{print $1}') == "$DATA_SHA" ]] || die "$s download: SHA-256 mismatch"
		rm -f "$dl"
	fi
	echo "$s $dir $round $ELAPSED $peak" >>"$RAW"
	log "$(printf 'round %d  %-2s %-8s %7.2f s  %7.1f MB/s  peak RSS %6.1f MiB' "$round" "$s" "$dir" "$ELAPSED" \
		"$(awk -v b="$SIZE_BYTES" -v t="$ELAPSED" 'BEGIN{print b/1e6/t}')" "$(awk -v k="$peak" 'BEGIN{print k/1024}')")"
}

read -r -a ORDER <<<"$STORES"
LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
for round in $(seq "$ROUNDS"); do
	if ((round % 2)); then order=("${ORDER[@]}"); else order=(); for ((i = ${#ORDER[@]} - 1; i >= 0; i--)); do order+=("${ORDER[i]}"); done; fi
	for s in "${order[@]}"; do
		measure "$s" upload "$round"
		measure "$s" download "$round"
	done
done
LOAD_END=$(cut -d' ' -f1 /proc/loadavg)

# ---------------------------------------------------------------- checks
for s in $STORES; do
	printf 'get /historique/depots.csv %s\n' "$WORK/depots-$s.csv" >"$WORK/batch"
	run_sftp "${PORT[$s]}" "$WORK/batch"
	for n in ${UPLOADED[$s]}; do
		row=$(awk -F';' -v n="$n" '$1==n' "$WORK/depots-$s.csv" | tr -d '\r')
		[[ -n $row && $row != *$'\n'* ]] || die "$s: deposit $n missing from depots.csv, or there twice"
		[[ $(cut -d';' -f4 <<<"$row") == "$SIZE_BYTES" && $(cut -d';' -f7 <<<"$row") == "$DATA_SHA" ]] ||
			die "$s: deposit $n recorded with another size or SHA-256: $row"
	done
done
if ((USE_S3)); then
	want=$((ROUNDS + 1))
	[[ $(objects_in_bucket) == "$want" ]] || die "the bucket holds $(objects_in_bucket) objects, want $want (the response and $ROUNDS deposits)"
	[[ $(objects_on_disk s3) == 0 ]] || die "the s3 server wrote $(objects_on_disk s3) file(s) into DATA_DIR/store/objects"
	while read -r f; do
		[[ $(sha256sum "$f" | awk '{print $1}') == "$DATA_SHA" ]] || die "object $f in the bucket: SHA-256 mismatch"
	done < <(find "$WORK/s3/$BUCKET" -type f ! -path '*/.sgwtmp/*')
	leftovers=$(find "$WORK/s3" -path '*/.sgwtmp/*' -type f 2>/dev/null | wc -l)
	log "bucket: $(objects_in_bucket) objects, each with the file's SHA-256; versitygw staging files left: $leftovers"
fi
log "every download and every recorded deposit checked (size and SHA-256)"

# ---------------------------------------------------------------- report
stat3() { # values on stdin -> "median min max"
	sort -g | awk '{v[NR]=$1} END{m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; print m, v[1], v[NR]}'
}
col() { awk -v s="$1" -v d="$2" -v c="$3" '$1==s && $2==d {print $c}' "$RAW"; }
mbps() { awk -v b="$SIZE_BYTES" -v t="$1" 'BEGIN{printf "%.1f", b/1e6/t}'; }
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}'; }

echo
echo "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo), $(awk '/^MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM; load average $LOAD_START at the start, $LOAD_END at the end"
VGW_INFO=
((USE_S3)) && VGW_INFO=", versitygw ${VGW_VERSION:-$("$VGW" --version 2>/dev/null | awk 'NR==1{print $NF}')} (posix backend, same disk)"
echo "software: pigp $PIGP_COMMIT$PIGP_DIRTY, $(go version | awk '{print $3}'), $(ssh -V 2>&1 | awk '{sub(/,$/, "", $1); print $1}')$VGW_INFO"
echo "file: $SIZE_MB MiB of /dev/urandom; OpenSSH sftp -b, ed25519 key, $CIPHER, 127.0.0.1; $ROUNDS interleaved rounds (order alternating); MB = 10^6 bytes"
echo "peak RSS: VmHWM of the pigp serve process during each transfer$( ((HWM_RESET)) || echo ' (NOT reset between transfers: peaks since start)'); RSS before the transfers: $(for s in $STORES; do printf '%s %s MiB  ' "$s" "$(mib "${BASE_RSS[$s]}")"; done)"
echo
echo "| store | direction | median s (min–max) | median MB/s | peak RSS MiB median (max) |"
echo "|---|---|---:|---:|---:|"
for s in $STORES; do
	for dir in upload download; do
		read -r m lo hi < <(col "$s" "$dir" 4 | stat3)
		read -r pm _ pmax < <(col "$s" "$dir" 5 | stat3)
		printf '| %s | %s | %.2f (%.2f–%.2f) | %s | %s (%s) |\n' "$s" "$dir" "$m" "$lo" "$hi" "$(mbps "$m")" "$(mib "$pm")" "$(mib "$pmax")"
	done
done
if [[ " $STORES " == *" fs "* ]] && ((USE_S3)); then
	echo
	echo "| direction | S3 / fs throughput, median of the per-round ratios (min–max) |"
	echo "|---|---:|"
	for dir in upload download; do
		read -r m lo hi < <(awk -v d="$dir" '$2==d {t[$1" "$3]=$4} END{for (k in t) {split(k, a, " "); if (a[1]=="fs" && (("s3 " a[2]) in t)) print t[k]/t["s3 " a[2]]}}' "$RAW" | stat3)
		printf '| %s | **%.2f** (%.2f–%.2f) |\n' "$dir" "$m" "$lo" "$hi"
	done
fi
echo
echo "<details><summary>Every transfer</summary>"
echo
echo "| round | store | direction | s | MB/s | peak RSS MiB |"
echo "|---:|---|---|---:|---:|---:|"
while read -r s d r t p; do echo "| $r | $s | $d | $t | $(mbps "$t") | $(mib "$p") |"; done <"$RAW"
echo
echo "</details>"
