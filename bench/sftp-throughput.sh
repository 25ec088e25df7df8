#!/usr/bin/env bash
# SFTP throughput benchmark: pigp against OpenSSH's internal-sftp, same machine, one run.
#
# Uploads and downloads one random file (1 GiB by default) with the OpenSSH `sftp` client
# against (a) pigp and (b) a throw-away OpenSSH sshd with "Subsystem sftp internal-sftp",
# both on 127.0.0.1, key authentication, cipher aes128-gcm@openssh.com. Each measurement is
# repeated REPS times and the median is kept. Checks every downloaded file's SHA-256 and that
# pigp's recorded deposit SHA-256 (/historique/depots.csv) equals the local file's.
# Prints a table and refreshes the generated part of bench/RESULTS.md.
#
# Usage (from anywhere; run as root, OpenSSH's sshd needs it):
#   bench/sftp-throughput.sh                  # full run, 1 GiB, writes bench/RESULTS.md
#   SIZE_MB=64 bench/sftp-throughput.sh       # quick run, prints only
#
# Environment:
#   SIZE_MB=1024            size of the test file in MiB
#   REPS=3                  repetitions of each measurement (median kept)
#   CIPHER=aes128-gcm@openssh.com
#   LARGE_BLOCKS=1          also measure with `sftp -B 261120` (the request size OpenSSH's client
#                           picks by itself against OpenSSH's server via limits@openssh.com); 0 skips
#   PIGP_BUILD_FLAGS=""     extra flags for `go build` (e.g. "-overlay /tmp/overlay.json")
#   RESULTS_FILE=...        where to write the results (default bench/RESULTS.md when
#                           SIZE_MB >= 1024, otherwise nothing is written); "-" = don't write
#   TRANSFER_TIMEOUT=900    seconds allowed for one transfer
#   KEEP_WORK=0             1 keeps the temporary directory (logs, data dir) for inspection
#   BENCH_TMPDIR=$TMPDIR    where the temporary directory goes (needs ~(3+2*REPS+1) x SIZE of space)
set -euo pipefail

SIZE_MB=${SIZE_MB:-1024}
REPS=${REPS:-3}
CIPHER=${CIPHER:-aes128-gcm@openssh.com}
LARGE_BLOCKS=${LARGE_BLOCKS:-1}
PIGP_BUILD_FLAGS=${PIGP_BUILD_FLAGS:-}
TRANSFER_TIMEOUT=${TRANSFER_TIMEOUT:-900}
KEEP_WORK=${KEEP_WORK:-0}
BENCH_TMPDIR=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}

SIRET=22940028800010
LOGIN=bench-xt
RESP_NAME=2026_${SIRET}_20261128101500_REP.xml
BIG_BLOCK=261120 # 256 KiB - 1024: OpenSSH's own request size; pkg/sftp drops packets > 256 KiB

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z ${RESULTS_FILE:-} ]]; then
	if ((SIZE_MB >= 1024)); then RESULTS_FILE=$REPO/bench/RESULTS.md; else RESULTS_FILE=-; fi
fi

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	printf '[bench] ERROR: %s\n' "$*" >&2
	exit 1
}

[[ $SIZE_MB =~ ^[1-9][0-9]*$ ]] || die "SIZE_MB must be a positive integer, got '$SIZE_MB'"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS must be a positive integer, got '$REPS'"

# ---------------------------------------------------------------- prerequisites
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found${2:+ ($2)}"; }
need go
need sha256sum
need timeout
need awk
if [[ ! -x /usr/sbin/sshd ]] || ! command -v sftp >/dev/null || ! command -v ssh-keygen >/dev/null; then
	if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
		log "installing openssh-server and openssh-client"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssh-server openssh-client >/dev/null ||
			die "apt-get install openssh-server openssh-client failed"
	else
		die "OpenSSH sshd/sftp/ssh-keygen missing: apt-get install openssh-server openssh-client"
	fi
fi
SSHD=/usr/sbin/sshd
[[ $(id -u) -eq 0 ]] || die "run as root: the throw-away sshd needs it (privilege separation)"
ME=$(id -un)

# ---------------------------------------------------------------- workspace and cleanup
WORK=$(mktemp -d "$BENCH_TMPDIR/pigp-bench.XXXXXX")
PIGP_PID=
SSHD_PID=

stop_pid() { # pid name
	local pid=$1 i
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "$2 (pid $pid) did not stop on SIGTERM, killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	stop_pid "$PIGP_PID" pigp
	stop_pid "$SSHD_PID" sshd
	if ((rc != 0)); then
		for f in pigp.log sshd.log last-sftp.log; do
			[[ -s $WORK/$f ]] && { echo "--- last lines of $f:" >&2; tail -n 15 "$WORK/$f" >&2; }
		done
	fi
	if [[ $KEEP_WORK == 1 ]]; then
		log "kept $WORK"
	else
		rm -rf "$WORK"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

avail_mb=$(df -Pm "$WORK" | awk 'NR==2{print $4}')
need_mb=$((SIZE_MB * (4 + 2 * REPS * (1 + LARGE_BLOCKS))))
((avail_mb > need_mb)) || die "not enough space in $BENCH_TMPDIR: ${avail_mb} MiB free, ~${need_mb} MiB needed (set BENCH_TMPDIR)"

# Two free TCP ports on 127.0.0.1 (bound together so that they differ).
free_ports() {
	if command -v python3 >/dev/null; then
		python3 -c '
import socket
ss=[socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))'
	else
		local out=() p
		while ((${#out[@]} < 2)); do
			p=$((20000 + RANDOM % 40000))
			[[ -z $(ss -Htln "sport = :$p") ]] && [[ " ${out[*]} " != *" $p "* ]] && out+=("$p")
		done
		echo "${out[*]}"
	fi
}

wait_port() { # port pid name
	local i
	for i in $(seq 300); do
		kill -0 "$2" 2>/dev/null || die "$3 exited during start-up"
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	die "$3 does not listen on 127.0.0.1:$1 after 30 s"
}

read -r PIGP_PORT SSHD_PORT < <(free_ports)
[[ -n $PIGP_PORT && -n $SSHD_PORT ]] || die "could not find free ports"

# ---------------------------------------------------------------- build pigp
log "building pigp${PIGP_BUILD_FLAGS:+ with $PIGP_BUILD_FLAGS}"
# shellcheck disable=SC2086 # PIGP_BUILD_FLAGS is a list of flags
(cd "$REPO" && go build $PIGP_BUILD_FLAGS -o "$WORK/pigp" ./cmd/pigp) || die "go build failed"
GO_VERSION=$(cd "$REPO" && go version | awk '{print $3}')
PIGP_COMMIT=$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
PIGP_DIRTY=$(cd "$REPO" && { git status --porcelain 2>/dev/null | grep -q . && echo " (with uncommitted changes)"; } || true)

# ---------------------------------------------------------------- test data and key
log "generating a ${SIZE_MB} MiB random file"
DATA=$WORK/data.bin
head -c "${SIZE_MB}M" /dev/urandom >"$DATA"
SIZE_BYTES=$(stat -c %s "$DATA")
DATA_SHA=$(sha256sum "$DATA" | awk '{print $1}')
ssh-keygen -q -t ed25519 -N '' -C pigp-bench -f "$WORK/key"

# ---------------------------------------------------------------- pigp
export PIGP_DATA_DIR=$WORK/pigp-data
export PIGP_SFTP_LISTEN=127.0.0.1:$PIGP_PORT
export PIGP_MAX_UPLOAD_SIZE=$(((SIZE_MB + 1) * 1024 * 1024))
export PIGP_SHUTDOWN_TIMEOUT=5s
export PIGP_LOG_LEVEL=info
# Deposit processing runs on a schedule in `serve`; the bench's deposits are random bytes, and
# processing them would compete for CPU with the transfers. Push it to 1 January 00:00:00.
export PIGP_PROCESSING_SCHEDULE=${PIGP_PROCESSING_SCHEDULE:-0 0 0 1 1 *}
unset PIGP_DATABASE_URL # embedded SQLite in the data dir
pigp() { timeout 120 "$WORK/pigp" "$@"; }
log "setting up pigp in $PIGP_DATA_DIR"
pigp org add --siret "$SIRET" --name "Bench" >"$WORK/setup.log" 2>&1 || die "pigp org add failed: $(cat "$WORK/setup.log")"
pigp user add --login "$LOGIN" --siret "$SIRET" --name "Bench User" --email b@example.fr >>"$WORK/setup.log" 2>&1 ||
	die "pigp user add failed: $(tail -n 3 "$WORK/setup.log")"
pigp user key add --login "$LOGIN" --file "$WORK/key.pub" >>"$WORK/setup.log" 2>&1 ||
	die "pigp user key add failed: $(tail -n 3 "$WORK/setup.log")"
pigp response publish --siret "$SIRET" --name "$RESP_NAME" "$DATA" >>"$WORK/setup.log" 2>&1 ||
	die "pigp response publish failed: $(tail -n 3 "$WORK/setup.log")"
"$WORK/pigp" serve >"$WORK/pigp.log" 2>&1 &
PIGP_PID=$!
wait_port "$PIGP_PORT" "$PIGP_PID" "pigp serve"
log "pigp listening on 127.0.0.1:$PIGP_PORT (pid $PIGP_PID)"

# ---------------------------------------------------------------- OpenSSH sshd (internal-sftp)
SSHD_DIR=$WORK/sshd
mkdir -p "$SSHD_DIR/upload"
ssh-keygen -q -t ed25519 -N '' -f "$SSHD_DIR/host_ed25519"
cp "$WORK/key.pub" "$SSHD_DIR/authorized_keys"
cat >"$SSHD_DIR/sshd_config" <<EOF
# throw-away sshd for bench/sftp-throughput.sh
ListenAddress 127.0.0.1
Port $SSHD_PORT
HostKey $SSHD_DIR/host_ed25519
PidFile $SSHD_DIR/sshd.pid
AuthorizedKeysFile $SSHD_DIR/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers $ME
UsePAM no
StrictModes no
PrintMotd no
X11Forwarding no
AllowTcpForwarding no
Subsystem sftp internal-sftp
EOF
mkdir -p /run/sshd # privilege-separation directory sshd insists on (Debian)
"$SSHD" -t -f "$SSHD_DIR/sshd_config" 2>"$WORK/sshd.log" || die "sshd rejects its config: $(cat "$WORK/sshd.log")"
"$SSHD" -D -e -f "$SSHD_DIR/sshd_config" 2>>"$WORK/sshd.log" &
SSHD_PID=$!
wait_port "$SSHD_PORT" "$SSHD_PID" "sshd"
log "OpenSSH sshd listening on 127.0.0.1:$SSHD_PORT (pid $SSHD_PID)"
OPENSSH_VERSION=$(ssh -V 2>&1 | awk '{sub(/,$/, "", $1); print $1}')

# ---------------------------------------------------------------- transfers
SFTP_OPTS=(-q -o "Ciphers=$CIPHER" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
	-o LogLevel=ERROR -o IdentitiesOnly=yes -o IdentityFile="$WORK/key" -o BatchMode=yes
	-o ConnectTimeout=10 -o ServerAliveInterval=15 -o ServerAliveCountMax=4)
CLK_TCK=$(getconf CLK_TCK)

# CPU seconds (user+sys, plus reaped children: sshd's per-connection processes) of a process.
proc_cpu() { awk -v t="$CLK_TCK" '{print ($14+$15+$16+$17)/t}' "/proc/$1/stat"; }
# CPU seconds used by the whole machine (all CPUs, user+nice+system+irq+softirq+steal).
machine_cpu() { awk -v t="$CLK_TCK" '$1=="cpu"{print ($2+$3+$4+$7+$8+$9)/t}' /proc/stat; }

# run_sftp PORT USER BATCH -- extra sftp options...; sets ELAPSED, CLIENT_CPU
run_sftp() {
	local port=$1 user=$2 batch=$3
	shift 3
	local tf=$WORK/time.out
	local TIMEFORMAT='%R %U %S'
	if ! { time timeout "$TRANSFER_TIMEOUT" sftp "${SFTP_OPTS[@]}" "$@" -P "$port" -b "$batch" "$user@127.0.0.1" \
		>"$WORK/last-sftp.log" 2>&1; } 2>"$tf"; then
		die "sftp to port $port failed ($(tr '\n' ' ' <"$batch")): $(tail -n 5 "$WORK/last-sftp.log")"
	fi
	read -r ELAPSED u s <"$tf"
	CLIENT_CPU=$(awk -v u="$u" -v s="$s" 'BEGIN{printf "%.2f", u+s}')
}

sftp_batch() { printf '%s\n' "$@" >"$WORK/batch"; }

log "checking both servers answer"
sftp_batch 'ls /'
run_sftp "$PIGP_PORT" "$LOGIN" "$WORK/batch"
grep -q depot "$WORK/last-sftp.log" || die "pigp: / does not list depot"
sftp_batch "ls $SSHD_DIR"
run_sftp "$SSHD_PORT" "$ME" "$WORK/batch"

# Connection set-up alone (ssh handshake, auth, sftp init, one round trip), included in every
# timed transfer below: measured so that the report can show it.
SETUP_RAW=$WORK/setup.txt
: >"$SETUP_RAW"
for i in 1 2 3; do
	sftp_batch pwd
	run_sftp "$PIGP_PORT" "$LOGIN" "$WORK/batch"
	echo "pigp $ELAPSED" >>"$SETUP_RAW"
	run_sftp "$SSHD_PORT" "$ME" "$WORK/batch"
	echo "openssh $ELAPSED" >>"$SETUP_RAW"
done

# Distinct call-file names in the past: one second apart from one hour ago.
NAME_BASE=$(($(date +%s) - 3600))
NAME_SEQ=0
next_call_name() { # sets CALL_NAME (no subshell: NAME_SEQ must advance)
	local ts=$((NAME_BASE + NAME_SEQ))
	NAME_SEQ=$((NAME_SEQ + 1))
	CALL_NAME="$(TZ=Europe/Paris date -d "@$ts" +%Y)_${SIRET}_$(TZ=Europe/Paris date -d "@$ts" +%Y%m%d%H%M%S).xml"
}

# RESULTS: lines "variant server direction rep seconds server_cpu client_cpu extra"
RAW=$WORK/raw.txt
: >"$RAW"
PIGP_NAMES=()
VARIANTS=(default)
((LARGE_BLOCKS == 1)) && VARIANTS+=(B$BIG_BLOCK)

check_sha() { # file label
	local got
	got=$(sha256sum "$1" | awk '{print $1}')
	[[ $got == "$DATA_SHA" ]] || die "$2: SHA-256 mismatch ($got, expected $DATA_SHA)"
}

measure() { # variant server direction rep
	local variant=$1 server=$2 dir=$3 rep=$4 port user pid before after extra=-
	local opts=()
	[[ $variant == default ]] || opts=(-B "${variant#B}")
	if [[ $server == pigp ]]; then port=$PIGP_PORT user=$LOGIN pid=$PIGP_PID; else port=$SSHD_PORT user=$ME pid=$SSHD_PID; fi
	local dl=$WORK/download.bin remote
	rm -f "$dl"
	if [[ $dir == upload ]]; then
		if [[ $server == pigp ]]; then
			next_call_name
			remote=/depot/$CALL_NAME
			PIGP_NAMES+=("$CALL_NAME")
		else
			remote=$SSHD_DIR/upload/up.bin
			rm -f "$remote"
		fi
		sftp_batch "put $DATA $remote"
	else
		if [[ $server == pigp ]]; then remote=/retrait/$RESP_NAME; else remote=$DATA; fi
		sftp_batch "get $remote $dl"
	fi
	sync # start every transfer without dirty pages left by the previous one
	before=$(proc_cpu "$pid")
	local mbefore mafter
	mbefore=$(machine_cpu)
	run_sftp "$port" "$user" "$WORK/batch" "${opts[@]}"
	[[ $server == openssh ]] && sleep 0.3 # let sshd reap the session processes (their CPU time)
	after=$(proc_cpu "$pid")
	mafter=$(machine_cpu)
	if [[ $dir == download ]]; then
		[[ $(stat -c %s "$dl") == "$SIZE_BYTES" ]] || die "$server download: wrong size"
		check_sha "$dl" "$server download"
		rm -f "$dl"
	elif [[ $server == openssh ]]; then
		# internal-sftp does not fsync; pigp does. Record what an fsync would have added.
		local t0 t1
		t0=$(date +%s.%N)
		sync "$remote"
		t1=$(date +%s.%N)
		extra=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
		check_sha "$remote" "openssh upload"
		rm -f "$remote"
	fi
	local scpu other
	scpu=$(awk -v a="$before" -v b="$after" 'BEGIN{printf "%.2f", b-a}')
	# CPU used by anything else on the machine meanwhile (kernel writeback included): contention.
	other=$(awk -v a="$mbefore" -v b="$mafter" -v s="$scpu" -v c="$CLIENT_CPU" 'BEGIN{o=b-a-s-c; printf "%.2f", (o<0)?0:o}')
	echo "$variant $server $dir $rep $ELAPSED $scpu $CLIENT_CPU $extra $other" >>"$RAW"
	log "$(printf '%-8s %-7s %-8s #%d  %7.2f s  %7.1f MB/s  server cpu %5.2f s  client cpu %5.2f s  other cpu %5.2f s' \
		"$variant" "$server" "$dir" "$rep" "$ELAPSED" "$(awk -v b="$SIZE_BYTES" -v t="$ELAPSED" 'BEGIN{print b/1e6/t}')" "$scpu" "$CLIENT_CPU" "$other")"
}

LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$LOAD_START" -v n="$(nproc)" 'BEGIN{exit !(l > n/2)}'; then
	log "WARNING: load average $LOAD_START on $(nproc) CPUs: other work competes with the transfers, results will be noisy"
fi
for variant in "${VARIANTS[@]}"; do
	for rep in $(seq "$REPS"); do
		# alternate the order so that neither server always runs first
		if ((rep % 2)); then servers=(pigp openssh); else servers=(openssh pigp); fi
		for server in "${servers[@]}"; do
			measure "$variant" "$server" upload "$rep"
			measure "$variant" "$server" download "$rep"
		done
	done
done

LOAD_END=$(cut -d' ' -f1 /proc/loadavg)

# ---------------------------------------------------------------- pigp's recorded SHA-256
log "checking pigp's recorded deposits in /historique/depots.csv"
sftp_batch "get /historique/depots.csv $WORK/depots.csv"
run_sftp "$PIGP_PORT" "$LOGIN" "$WORK/batch"
for n in "${PIGP_NAMES[@]}"; do
	row=$(awk -F';' -v n="$n" '$1==n' "$WORK/depots.csv" | tr -d '\r')
	[[ -n $row ]] || die "deposit $n missing from depots.csv"
	[[ $row != *$'\n'* ]] || die "deposit $n appears more than once in depots.csv"
	size=$(cut -d';' -f4 <<<"$row")
	sha=$(cut -d';' -f7 <<<"$row")
	[[ $size == "$SIZE_BYTES" ]] || die "deposit $n: recorded size $size, expected $SIZE_BYTES"
	[[ $sha == "$DATA_SHA" ]] || die "deposit $n: recorded sha256 $sha, expected $DATA_SHA"
done
log "all ${#PIGP_NAMES[@]} deposits recorded with the right size and SHA-256; every download verified"

# ---------------------------------------------------------------- report
median() { sort -g | awk '{v[NR]=$1} END{if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
med() { # variant server direction column(5=s,6=server cpu,7=client cpu,8=fsync)
	awk -v v="$1" -v s="$2" -v d="$3" -v c="$4" '$1==v && $2==s && $3==d {print $c}' "$RAW" | median
}
best() { # variant server direction: shortest time of the runs
	awk -v v="$1" -v s="$2" -v d="$3" '$1==v && $2==s && $3==d {print $5}' "$RAW" | sort -g | head -n 1
}
mbps() { awk -v b="$SIZE_BYTES" -v t="$1" 'BEGIN{printf "%.1f", b/1e6/t}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }

TABLE=$WORK/table.md
{
	for variant in "${VARIANTS[@]}"; do
		if [[ $variant == default ]]; then
			echo "Times and MB/s are medians; the target is judged on the medians. Best-run figures are less sensitive to other load on the machine."
			echo
			echo "**OpenSSH \`sftp\` defaults** (the target). Against pigp the client sends 32 KiB requests (no \`limits@openssh.com\`);"
			echo "against OpenSSH it asks the server's limits and sends ${BIG_BLOCK}-byte requests; 64 requests in flight in both cases."
		else
			echo "**\`sftp -B ${variant#B}\`** (same request size for both servers; informative)."
		fi
		echo
		echo "| direction | pigp s | pigp MB/s | OpenSSH s | OpenSSH MB/s | pigp / OpenSSH | target | best-run MB/s pigp / OpenSSH (ratio) | server CPU s pigp / OpenSSH | client CPU s pigp / OpenSSH |"
		echo "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|"
		for dir in upload download; do
			ps=$(med "$variant" pigp "$dir" 5)
			os=$(med "$variant" openssh "$dir" 5)
			r=$(ratio "$(mbps "$ps")" "$(mbps "$os")")
			if [[ $variant == default ]]; then
				tgt=$(awk -v r="$r" 'BEGIN{print (r >= 0.9) ? "≥ 0.9 ✅ met" : "≥ 0.9 ❌ missed"}')
			else
				tgt="–"
			fi
			pb=$(mbps "$(best "$variant" pigp "$dir")")
			ob=$(mbps "$(best "$variant" openssh "$dir")")
			printf '| %s | %.2f | %s | %.2f | %s | **%s** | %s | %s / %s (%s) | %.2f / %.2f | %.2f / %.2f |\n' "$dir" "$ps" "$(mbps "$ps")" "$os" "$(mbps "$os")" "$r" "$tgt" \
				"$pb" "$ob" "$(ratio "$pb" "$ob")" \
				"$(med "$variant" pigp "$dir" 6)" "$(med "$variant" openssh "$dir" 6)" \
				"$(med "$variant" pigp "$dir" 7)" "$(med "$variant" openssh "$dir" 7)"
		done
		os=$(med "$variant" openssh upload 5)
		fs=$(med "$variant" openssh upload 8)
		ps=$(med "$variant" pigp upload 5)
		echo
		printf 'OpenSSH upload followed by an fsync of the file (not timed above; pigp fsyncs before answering CLOSE): %.2f s + %.2f s = %s MB/s → pigp / (OpenSSH + fsync) = %s.\n' \
			"$os" "$fs" "$(mbps "$(awk -v a="$os" -v b="$fs" 'BEGIN{print a+b}')")" \
			"$(ratio "$(mbps "$ps")" "$(mbps "$(awk -v a="$os" -v b="$fs" 'BEGIN{print a+b}')")")"
		echo
	done
	printf 'Connection set-up alone (`sftp -b` with `pwd`, median of 3), included in every time above: pigp %.2f s, OpenSSH %.2f s.\n\n' \
		"$(awk '$1=="pigp"{print $2}' "$SETUP_RAW" | median)" "$(awk '$1=="openssh"{print $2}' "$SETUP_RAW" | median)"
	printf 'Machine load average (1 min) at the start and at the end of the transfers: %s and %s. '"'"'other CPU s'"'"' below is the CPU time the rest of the machine used during a transfer (kernel writeback included); the machine has %s CPUs (a transfer of T seconds had that many times T CPU seconds in all).\n\n' \
		"$LOAD_START" "$LOAD_END" "$(nproc)"
	echo "<details><summary>Every measurement (seconds; CPU seconds of the server process, of sftp+ssh, of everything else)</summary>"
	echo
	echo "| variant | server | direction | run | s | MB/s | server CPU s | client CPU s | other CPU s |"
	echo "|---|---|---|---:|---:|---:|---:|---:|---:|"
	while read -r v s d r t sc cc _ oc; do
		echo "| $v | $s | $d | $r | $t | $(mbps "$t") | $sc | $cc | $oc |"
	done <"$RAW"
	echo
	echo "</details>"
} >"$TABLE"

CPU_MODEL=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
RAM=$(awk '/^MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)
FS_TYPE=$(df -PT "$WORK" | awk 'NR==2{print $2" ("$1")"}')
REPRO="sudo bench/sftp-throughput.sh   # from the repository root; SIZE_MB=$SIZE_MB REPS=$REPS CIPHER=$CIPHER LARGE_BLOCKS=$LARGE_BLOCKS"

GEN=$WORK/generated.md
{
	echo "<!-- BEGIN GENERATED by bench/sftp-throughput.sh; do not edit by hand, the next run replaces it -->"
	echo "## Latest run: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "| | |"
	echo "|---|---|"
	echo "| machine | $(nproc) CPUs, $CPU_MODEL, $RAM RAM, kernel $(uname -r) |"
	echo "| disk of the data dirs | $FS_TYPE |"
	echo "| software | pigp $PIGP_COMMIT$PIGP_DIRTY, $GO_VERSION, $OPENSSH_VERSION (client and server) |"
	echo "| file | $SIZE_MB MiB ($SIZE_BYTES bytes) of /dev/urandom, SHA-256 verified after every download and in pigp's depots.csv |"
	echo "| transfers | OpenSSH \`sftp -b\`, 127.0.0.1, ed25519 key, \`-o Ciphers=$CIPHER\`, median of $REPS runs, MB = 10^6 bytes |"
	echo "| pigp | \`pigp serve\`, SQLite, upload streamed to a temp file with SHA-256, fsynced + renamed + dir fsynced before CLOSE is answered |"
	echo "| OpenSSH | \`sshd -D -e\` with \`Subsystem sftp internal-sftp\`, upload to a temp dir, no fsync |"
	echo "| reproduce | \`$REPRO\` |"
	echo
	cat "$TABLE"
	echo "<!-- END GENERATED -->"
} >"$GEN"

echo
cat "$TABLE"
echo

if [[ $RESULTS_FILE != - ]]; then
	if [[ -f $RESULTS_FILE ]] && grep -q '^<!-- BEGIN GENERATED' "$RESULTS_FILE" && grep -q '^<!-- END GENERATED' "$RESULTS_FILE"; then
		awk -v gen="$GEN" '
			/^<!-- BEGIN GENERATED/ {while ((getline l < gen) > 0) print l; skip=1; next}
			/^<!-- END GENERATED/ {skip=0; next}
			!skip {print}' "$RESULTS_FILE" >"$WORK/results.new"
	else
		{
			echo "# SFTP throughput: pigp vs OpenSSH internal-sftp"
			echo
			echo "Produced by \`bench/sftp-throughput.sh\` (issue 2). Target: pigp ≥ 0.9× OpenSSH for upload (with hashing and fsync) and download, aes128-gcm."
			echo
			cat "$GEN"
			[[ -f $RESULTS_FILE ]] && { echo; echo "## Earlier content"; echo; cat "$RESULTS_FILE"; }
		} >"$WORK/results.new"
	fi
	cp "$WORK/results.new" "$RESULTS_FILE"
	log "wrote $RESULTS_FILE"
fi
