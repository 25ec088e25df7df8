#!/usr/bin/env bash
# SFTP throughput: pigp against OpenSSH's internal-sftp (issue 14), same machine, one run.
#
# Starts, on 127.0.0.1 and free ports: pigp built from the working tree ("after"), optionally a
# second pigp ("before": a commit or a binary), and a throw-away OpenSSH sshd with its own config
# and "Subsystem sftp internal-sftp". Then, in ROUNDS interleaved rounds (the order of the servers
# rotates each round, so that none always goes first), uploads and downloads one random file with
# the OpenSSH `sftp` client, once with the client's default cipher and once with each cipher of
# CIPHERS. Reports, per case, the median MB/s of each server, the median of the per-round ratios
# pigp / OpenSSH with their min–max, and the server's CPU seconds per GiB (user+system, read
# from /proc; for OpenSSH the whole process tree: its per-connection processes are reaped by the
# listening sshd, whose cutime/cstime then hold their CPU). Then a concurrency case: CONC_N
# sessions from one address, default connection settings, all logged in and waiting at a barrier,
# then CONC_N uploads of CONC_MB MiB at once: accepted count, wall time, memory (PSS) of the
# server's process tree idle, with the sessions connected, and at its peak during the uploads
# (sampled every 0.1 s), each also per session above the idle memory; CONC_ROUNDS rounds.
# Every download's SHA-256 is checked, and pigp's recorded SHA-256 of every deposit
# (/historique/depots.csv).
#
# Usage (from anywhere; run as root: sshd's privilege separation needs it):
#   bench/sftp-throughput.sh                              # 1 GiB, 5 rounds, before = 1f102cc
#   SIZE_MB=64 ROUNDS=2 bench/sftp-throughput.sh          # quick check, prints only
#   BEFORE=/path/to/pigp bench/sftp-throughput.sh         # a prebuilt "before" binary
#   BEFORE= bench/sftp-throughput.sh                      # no "before"
#
# Environment:
#   SIZE_MB=1024            size of the test file in MiB
#   ROUNDS=5                interleaved rounds (median and min–max of the per-round ratios)
#   CIPHERS="aes128-gcm@openssh.com"   ciphers measured besides the client's default ("" = none)
#   BEFORE=1f102cc          git commit to build as "before" (default: main before issue 14), or a pigp
#                           binary; "" = none
#   PIGP_BIN=               a prebuilt pigp binary as "after" (default: build the working tree)
#   CONC_N=50 CONC_MB=10    the concurrency case (CONC_N=0 skips it)
#   CONC_ROUNDS=3           rounds of the concurrency case (median of each figure)
#   RESULTS_FILE=...        where to write the results (default bench/RESULTS.md when
#                           SIZE_MB >= 1024 and ROUNDS >= 5, otherwise nothing is written); "-" = don't
#   NOTE=...                a line written above the tables (machine state, ...)
#   TRANSFER_TIMEOUT=900    seconds allowed for one transfer
#   KEEP_WORK=0             1 keeps the temporary directory (logs, data dirs) for inspection
#   BENCH_TMPDIR=$TMPDIR    where the temporary directory goes
set -euo pipefail

SIZE_MB=${SIZE_MB:-1024}
ROUNDS=${ROUNDS:-5}
CIPHERS=${CIPHERS-aes128-gcm@openssh.com}
BEFORE=${BEFORE-1f102cc}
PIGP_BIN=${PIGP_BIN:-}
CONC_N=${CONC_N:-50}
CONC_MB=${CONC_MB:-10}
CONC_ROUNDS=${CONC_ROUNDS:-3}
TRANSFER_TIMEOUT=${TRANSFER_TIMEOUT:-900}
KEEP_WORK=${KEEP_WORK:-0}
BENCH_TMPDIR=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}

SIRET=22940028800010
LOGIN=bench-xt
RESP_NAME=2026_${SIRET}_20261128101500_REP.xml

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z ${RESULTS_FILE:-} ]]; then
	if ((SIZE_MB >= 1024 && ROUNDS >= 5)); then RESULTS_FILE=$REPO/bench/RESULTS.md; else RESULTS_FILE=-; fi
fi

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	printf '[bench] ERROR: %s\n' "$*" >&2
	exit 1
}

[[ $SIZE_MB =~ ^[1-9][0-9]*$ ]] || die "SIZE_MB must be a positive integer, got '$SIZE_MB'"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got '$ROUNDS'"
[[ $CONC_N =~ ^[0-9]+$ && $CONC_MB =~ ^[1-9][0-9]*$ && $CONC_ROUNDS =~ ^[1-9][0-9]*$ ]] || die "CONC_N, CONC_MB and CONC_ROUNDS must be integers"

# ---------------------------------------------------------------- prerequisites
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found${2:+ ($2)}"; }
need go
need sha256sum
need timeout
need awk
need ps
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
declare -A PID PORT USER_OF LABEL
SAMPLER_PID=

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
	local rc=$? s
	set +e
	trap - EXIT INT TERM
	[[ -n $SAMPLER_PID ]] && stop_pid "$SAMPLER_PID" sampler
	for s in "${!PID[@]}"; do stop_pid "${PID[$s]}" "$s"; done
	if ((rc != 0)); then
		for f in "$WORK"/*.log; do
			[[ -s $f ]] && { echo "--- last lines of $f:" >&2; tail -n 15 "$f" >&2; }
		done
	fi
	[[ -n ${DL_DIR:-} && $DL_DIR == /dev/shm/* ]] && rm -rf "$DL_DIR"
	if [[ $KEEP_WORK == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

NSERVERS=2
[[ -n $BEFORE ]] && NSERVERS=3
NCIPHERS=$((1 + $(wc -w <<<"$CIPHERS")))
avail_mb=$(df -Pm "$WORK" | awk 'NR==2{print $4}')
need_mb=$((SIZE_MB * (3 + (NSERVERS - 1) * ROUNDS * NCIPHERS) + CONC_N * CONC_MB * (NSERVERS - 1) * CONC_ROUNDS + 1024))
((avail_mb > need_mb)) || die "not enough space in $BENCH_TMPDIR: ${avail_mb} MiB free, ~${need_mb} MiB needed (set BENCH_TMPDIR)"

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
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
need python3
need flock

# ---------------------------------------------------------------- build
build_at() { # ref out: go build of a commit, from a clean export of it
	local dir=$WORK/src-$(basename "$2")
	mkdir -p "$dir"
	(cd "$REPO" && git archive "$1" | tar -x -C "$dir") || die "git archive $1 failed"
	(cd "$dir" && go build -o "$2" ./cmd/pigp) || die "go build of $1 failed"
	rm -rf "$dir"
}
AFTER_DESC=
if [[ -n $PIGP_BIN ]]; then
	[[ -x $PIGP_BIN ]] || die "PIGP_BIN=$PIGP_BIN is not an executable"
	cp "$PIGP_BIN" "$WORK/pigp-after"
	AFTER_DESC="$(basename "$PIGP_BIN")"
else
	log "building pigp from the working tree"
	(cd "$REPO" && go build -o "$WORK/pigp-after" ./cmd/pigp) || die "go build failed"
	AFTER_DESC="$(cd "$REPO" && git rev-parse --short HEAD)$(cd "$REPO" && git diff --quiet HEAD -- . ':!bench/RESULTS.md' || echo '+changes')"
fi
SERVERS=(openssh pigp)
LABEL[openssh]="OpenSSH"
LABEL[pigp]="pigp $AFTER_DESC"
if [[ -n $BEFORE ]]; then
	if [[ -f $BEFORE && -x $BEFORE ]]; then
		cp "$BEFORE" "$WORK/pigp-before"
		LABEL[before]="before ($(basename "$BEFORE"))"
	else
		log "building pigp at $BEFORE (before)"
		build_at "$BEFORE" "$WORK/pigp-before"
		LABEL[before]="before ($(cd "$REPO" && git rev-parse --short "$BEFORE"))"
	fi
	SERVERS+=(before)
fi
GO_VERSION=$(go version | awk '{print $3}')

# ---------------------------------------------------------------- test data and key
log "generating a ${SIZE_MB} MiB random file"
DATA=$WORK/data.bin
head -c "${SIZE_MB}M" /dev/urandom >"$DATA"
SIZE_BYTES=$(stat -c %s "$DATA")
DATA_SHA=$(sha256sum "$DATA" | awk '{print $1}')
SMALL=$WORK/small.bin
head -c "${CONC_MB}M" /dev/urandom >"$SMALL"
ssh-keygen -q -t ed25519 -N '' -C pigp-bench -f "$WORK/key"

# ---------------------------------------------------------------- pigp servers (default settings)
start_pigp() { # name binary
	local name=$1 bin=$2 port dir=$WORK/$1-data
	port=$(free_port)
	(
		export PIGP_DATA_DIR=$dir PIGP_SFTP_LISTEN=127.0.0.1:$port PIGP_HTTP_LISTEN=off
		export PIGP_MAX_UPLOAD_SIZE=$(((SIZE_MB > CONC_MB ? SIZE_MB : CONC_MB) * 1048576 + 1048576)) PIGP_SHUTDOWN_TIMEOUT=5s PIGP_LOG_LEVEL=warn
		# Processing the random deposits would compete for the CPU: push it to 1 January.
		export PIGP_PROCESSING_SCHEDULE="0 0 0 1 1 *"
		unset PIGP_DATABASE_URL
		p() { timeout 120 "$bin" "$@" >>"$WORK/$name-setup.log" 2>&1 || die "$name: pigp $* failed"; }
		p org add --siret "$SIRET" --name Bench
		p user add --login "$LOGIN" --siret "$SIRET" --name "Bench User" --email b@example.fr
		p user key add --login "$LOGIN" --file "$WORK/key.pub"
		p response publish --siret "$SIRET" --name "$RESP_NAME" "$DATA"
		exec "$bin" serve >"$WORK/$name.log" 2>&1
	) &
	PID[$name]=$!
	PORT[$name]=$port
	USER_OF[$name]=$LOGIN
	wait_port "$port" "${PID[$name]}" "$name"
	log "$name listening on 127.0.0.1:$port (pid ${PID[$name]})"
}
start_pigp pigp "$WORK/pigp-after"
[[ -n $BEFORE ]] && start_pigp before "$WORK/pigp-before"

# ---------------------------------------------------------------- OpenSSH sshd (internal-sftp)
SSHD_DIR=$WORK/sshd
mkdir -p "$SSHD_DIR/upload"
ssh-keygen -q -t ed25519 -N '' -f "$SSHD_DIR/host_ed25519"
cp "$WORK/key.pub" "$SSHD_DIR/authorized_keys"
PORT[openssh]=$(free_port)
# MaxStartups raised so that the concurrency case is not refused by sshd's own default (10:30:100).
cat >"$SSHD_DIR/sshd_config" <<EOF
# throw-away sshd for bench/sftp-throughput.sh
ListenAddress 127.0.0.1
Port ${PORT[openssh]}
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
MaxStartups $((CONC_N + 10))
Subsystem sftp internal-sftp
EOF
mkdir -p /run/sshd # privilege-separation directory sshd insists on (Debian)
"$SSHD" -t -f "$SSHD_DIR/sshd_config" 2>"$WORK/sshd.log" || die "sshd rejects its config: $(cat "$WORK/sshd.log")"
"$SSHD" -D -e -f "$SSHD_DIR/sshd_config" 2>>"$WORK/sshd.log" &
PID[openssh]=$!
USER_OF[openssh]=$ME
wait_port "${PORT[openssh]}" "${PID[openssh]}" sshd
log "OpenSSH sshd listening on 127.0.0.1:${PORT[openssh]} (pid ${PID[openssh]})"
OPENSSH_VERSION=$(ssh -V 2>&1 | awk '{sub(/,$/, "", $1); print $1}')

# ---------------------------------------------------------------- measuring
BASE_OPTS=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
	-o IdentitiesOnly=yes -o IdentityFile="$WORK/key" -o BatchMode=yes
	-o ConnectTimeout=30 -o ServerAliveInterval=15 -o ServerAliveCountMax=4)
SFTP_OPTS=(-q -o LogLevel=ERROR "${BASE_OPTS[@]}")
CLK_TCK=$(getconf CLK_TCK)

# CPU seconds of a server: user+system of the process and of its reaped children (sshd's
# per-connection processes, once reaped).
proc_cpu() { awk -v t="$CLK_TCK" '{print ($14+$15+$16+$17)/t}' "/proc/$1/stat"; }
# Waits until a server has no child process left (sshd reaps its sessions' processes).
wait_reaped() {
	local i
	for i in $(seq 100); do
		[[ -z $(ps -o pid= --ppid "$1") ]] && return 0
		sleep 0.05
	done
	log "WARNING: pid $1 still has children after 5 s; their CPU is not counted"
}
# Memory in KiB of a process and all its descendants: the sum of their PSS (proportional set size:
# pages shared between sshd's processes, or with the libraries, are divided among them, not counted
# once per process). `pss.py ROOT` prints it once; `pss.py ROOT FILE` samples it every 0.1 s and
# keeps the peak in FILE (one process: no fork per sample).
cat >"$WORK/pss.py" <<'PY'
import os, sys, time

def tree_pss(root):
    parent = {}
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                with open(f'/proc/{d}/stat') as f:
                    parent[int(d)] = int(f.read().rsplit(')', 1)[1].split()[1])
            except OSError:
                pass
    total = 0
    for p in parent:
        q = p
        while q not in (root, 0, 1) and q in parent:
            q = parent[q]
        if q == root:
            try:
                with open(f'/proc/{p}/smaps_rollup') as f:
                    total += sum(int(l.split()[1]) for l in f if l.startswith('Pss:'))
            except OSError:
                pass
    return total

root = int(sys.argv[1])
if len(sys.argv) < 3:
    print(tree_pss(root))
    sys.exit()
out, peak = sys.argv[2], 0
while True:
    total = tree_pss(root)
    if total > peak:
        peak = total
        with open(out + '.tmp', 'w') as f:
            f.write(f'{peak}\n')
        os.replace(out + '.tmp', out)
    time.sleep(0.1)
PY
tree_pss() { python3 "$WORK/pss.py" "$1"; }

cipher_opts() { [[ $1 == default ]] && return 0; printf '%s\n' -o "Ciphers=$1"; }

# run_sftp server cipher batch; sets ELAPSED
run_sftp() {
	local server=$1 cipher=$2 batch=$3 opts=()
	mapfile -t opts < <(cipher_opts "$cipher")
	local t0 t1
	t0=$(date +%s.%N)
	if ! timeout "$TRANSFER_TIMEOUT" sftp "${SFTP_OPTS[@]}" "${opts[@]}" -P "${PORT[$server]}" -b "$batch" \
		"${USER_OF[$server]}@127.0.0.1" >"$WORK/last-sftp.log" 2>&1; then
		die "sftp to $server failed ($(tr '\n' ' ' <"$batch")): $(tail -n 5 "$WORK/last-sftp.log")"
	fi
	t1=$(date +%s.%N)
	ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
}

# The cipher the client's defaults negotiate with each server (from `ssh -v`).
negotiated() { # server
	printf 'pwd\n' >"$WORK/probe"
	sftp -v "${BASE_OPTS[@]}" -P "${PORT[$1]}" -b "$WORK/probe" "${USER_OF[$1]}@127.0.0.1" >"$WORK/probe.log" 2>&1 || true
	awk '/kex: server->client cipher:/ {print $(NF-4) ($(NF-2) == "<implicit>" ? "" : " + " $(NF-2)); exit}' "$WORK/probe.log"
}
declare -A DEFAULT_CIPHER
for s in "${SERVERS[@]}"; do
	DEFAULT_CIPHER[$s]=$(negotiated "$s")
	[[ -n ${DEFAULT_CIPHER[$s]} ]] || die "could not connect to $s"
	log "client defaults with $s: ${DEFAULT_CIPHER[$s]}"
done

# Distinct call-file names in the past: one second apart from two hours ago.
NAME_BASE=$(($(date +%s) - 7200))
NAME_SEQ=0
next_call_name() { # sets CALL_NAME (no subshell: NAME_SEQ must advance)
	local ts=$((NAME_BASE + NAME_SEQ))
	NAME_SEQ=$((NAME_SEQ + 1))
	CALL_NAME="$(TZ=Europe/Paris date -d "@$ts" +%Y)_${SIRET}_$(TZ=Europe/Paris date -d "@$ts" +%Y%m%d%H%M%S).xml"
}
declare -A DEPOSITS # server -> space-separated names, checked in depots.csv at the end

# Downloads go to memory (tmpfs) when there is room: the client's writes to disk are not what is
# measured, and their writeback made some downloads take twice as long whatever the server.
DL_DIR=$WORK
if [[ -d /dev/shm ]] && (($(df -Pm /dev/shm | awk 'NR==2{print $4}') > SIZE_MB + 512)); then
	DL_DIR=$(mktemp -d /dev/shm/pigp-bench.XXXXXX)
fi
# RAW: "round cipher direction server seconds cpu_seconds"
RAW=$WORK/raw.txt
: >"$RAW"

measure() { # round cipher direction server
	local round=$1 cipher=$2 dir=$3 server=$4 remote dl=$DL_DIR/download.bin before after
	rm -f "$dl"
	if [[ $dir == upload ]]; then
		if [[ $server == openssh ]]; then
			remote=$SSHD_DIR/upload/up.bin
			rm -f "$remote"
		else
			next_call_name
			remote=/depot/$CALL_NAME
			DEPOSITS[$server]+=" $CALL_NAME"
		fi
		printf 'put %s %s\n' "$DATA" "$remote" >"$WORK/batch"
	else
		if [[ $server == openssh ]]; then remote=$DATA; else remote=/retrait/$RESP_NAME; fi
		printf 'get %s %s\n' "$remote" "$dl" >"$WORK/batch"
	fi
	sync # no dirty pages left by the previous transfer
	before=$(proc_cpu "${PID[$server]}")
	run_sftp "$server" "$cipher" "$WORK/batch"
	wait_reaped "${PID[$server]}"
	after=$(proc_cpu "${PID[$server]}")
	if [[ $dir == download ]]; then
		[[ $(sha256sum "$dl" | awk '{print $1}') == "$DATA_SHA" ]] || die "$server download: SHA-256 mismatch"
		rm -f "$dl"
	elif [[ $server == openssh ]]; then
		[[ $(sha256sum "$remote" | awk '{print $1}') == "$DATA_SHA" ]] || die "openssh upload: SHA-256 mismatch"
		rm -f "$remote"
	fi
	local cpu
	cpu=$(awk -v a="$before" -v b="$after" 'BEGIN{printf "%.2f", b-a}')
	echo "$round $cipher $dir $server $ELAPSED $cpu" >>"$RAW"
	log "$(printf 'round %d %-24s %-8s %-7s %7.2f s %7.1f MB/s  server CPU %5.2f s' "$round" "$cipher" "$dir" "$server" \
		"$ELAPSED" "$(awk -v b="$SIZE_BYTES" -v t="$ELAPSED" 'BEGIN{print b/1e6/t}')" "$cpu")"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
if awk -v l="${LOAD_START%% *}" -v n="$(nproc)" 'BEGIN{exit !(l > n/2)}'; then
	log "WARNING: load average $LOAD_START on $(nproc) CPUs: other work competes with the transfers, results will be noisy"
fi
CASES=(default $CIPHERS)
for round in $(seq "$ROUNDS"); do
	# rotate the servers' order: each goes first in turn
	order=()
	for i in "${!SERVERS[@]}"; do order+=("${SERVERS[$(((i + round - 1) % ${#SERVERS[@]}))]}"); done
	for cipher in "${CASES[@]}"; do
		for dir in upload download; do
			for server in "${order[@]}"; do measure "$round" "$cipher" "$dir" "$server"; done
		done
	done
done

# ---------------------------------------------------------------- concurrency case
# All CONC_N sessions connect and log in first, each then waits at a barrier (a local `!` command
# of its batch); once all are up, their memory is read ("connected"), the barrier opens and the
# CONC_N uploads run at once ("peak"). Without the barrier, the server that accepts faster holds
# more sessions at once, and the peaks would not compare the same thing. CONC_ROUNDS rounds, the
# servers' order rotating; the table gives the median of each figure.
# CONC: "round server accepted seconds peak_pss_kib idle_pss_kib connected_pss_kib cpu"
CONC=$WORK/conc.txt
: >"$CONC"
concurrency() { # round server
	local round=$1 server=$2 i ok=0 up t0 t1 idle connected peak before after
	local dir=$WORK/conc-$server-$round
	rm -rf "$dir" && mkdir -p "$dir"
	[[ $server == openssh ]] && { rm -rf "$SSHD_DIR/upload" && mkdir -p "$SSHD_DIR/upload"; }
	for i in $(seq "$CONC_N"); do
		{
			printf '!touch %s/up%d\n' "$dir" "$i"
			printf '!flock -s %s/barrier true\n' "$dir"
			if [[ $server == openssh ]]; then
				printf 'put %s %s/upload/c%d.bin\n' "$SMALL" "$SSHD_DIR" "$i"
			else
				next_call_name
				printf 'put %s /depot/%s\n' "$SMALL" "$CALL_NAME"
			fi
		} >"$dir/batch$i"
	done
	sync
	# pigp gives the memory of a burst back a second after its last request (limits.release_memory):
	# the previous case's transfers must not count as idle memory.
	sleep 2
	idle=$(tree_pss "${PID[$server]}")
	before=$(proc_cpu "${PID[$server]}")
	# The barrier: an exclusive lock held on fd 8 until the uploads may start (no other process
	# gets fd 8: a copy of it would hold the lock too).
	exec 8>"$dir/barrier"
	flock -x 8
	local pids=()
	for i in $(seq "$CONC_N"); do
		{ timeout "$TRANSFER_TIMEOUT" sftp "${SFTP_OPTS[@]}" -P "${PORT[$server]}" -b "$dir/batch$i" \
			"${USER_OF[$server]}@127.0.0.1" >"$dir/out$i" 2>&1 && touch "$dir/ok$i"; } 8>&- &
		pids+=($!)
	done
	for i in $(seq 600); do
		up=$(find "$dir" -name 'up*' | wc -l)
		((up == CONC_N)) && break
		sleep 0.1
	done
	((up == CONC_N)) || log "$server: only $up of $CONC_N sessions logged in after 60 s; the uploads start anyway"
	sleep 1
	connected=$(tree_pss "${PID[$server]}")
	echo 0 >"$dir/peak"
	# One process samples (no fork per sample), at a high priority: with CONC_N clients and, for
	# OpenSSH, 2 × CONC_N server processes busy on 2 CPUs, a sampler at the default priority
	# gets too little CPU to sample at all.
	nice -n -15 python3 "$WORK/pss.py" "${PID[$server]}" "$dir/peak" 8>&- &
	SAMPLER_PID=$!
	t0=$(date +%s.%N)
	exec 8>&-
	for i in "${pids[@]}"; do wait "$i" || true; done
	t1=$(date +%s.%N)
	wait_reaped "${PID[$server]}"
	after=$(proc_cpu "${PID[$server]}")
	stop_pid "$SAMPLER_PID" sampler
	SAMPLER_PID=
	peak=$(<"$dir/peak")
	ok=$(find "$dir" -name 'ok*' | wc -l)
	if ((ok < CONC_N)); then
		log "$server: $((CONC_N - ok)) of $CONC_N concurrent uploads failed, e.g.: $(cat "$dir"/out* | grep -v '^sftp>' | sort | uniq -c | sort -rn | head -n 2 | tr '\n' ' ')"
	fi
	echo "$round $server $ok $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') $peak $idle $connected $(awk -v a="$before" -v b="$after" 'BEGIN{printf "%.2f", b-a}')" >>"$CONC"
	log "concurrency round $round $server: $ok/$CONC_N accepted, PSS idle $((idle / 1024)) MiB, $CONC_N connected $((connected / 1024)) MiB, peak $((peak / 1024)) MiB"
}
if ((CONC_N > 0)); then
	for round in $(seq "$CONC_ROUNDS"); do
		n=${#SERVERS[@]}
		for k in $(seq 0 $((n - 1))); do concurrency "$round" "${SERVERS[$(((k + round - 1) % n))]}"; done
	done
fi
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- pigp's recorded SHA-256
for server in "${SERVERS[@]}"; do
	[[ $server == openssh ]] && continue
	printf 'get /historique/depots.csv %s\n' "$WORK/depots-$server.csv" >"$WORK/batch"
	run_sftp "$server" default "$WORK/batch"
	for n in ${DEPOSITS[$server]:-}; do
		row=$(awk -F';' -v n="$n" '$1==n' "$WORK/depots-$server.csv" | tr -d '\r')
		[[ -n $row ]] || continue # the concurrency case's refused uploads
		sha=$(cut -d';' -f7 <<<"$row")
		[[ $sha == "$DATA_SHA" || $sha == $(sha256sum "$SMALL" | awk '{print $1}') ]] || die "$server: deposit $n recorded with sha256 $sha"
	done
done
log "every download verified; every deposit recorded with the right SHA-256"

# ---------------------------------------------------------------- report
stats() { # values on stdin -> "median min max"
	sort -g | awk '{v[NR]=$1} END{m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.2f %.2f %.2f\n", m, v[1], v[NR]}'
}
col() { # cipher dir server column(5=s, 6=cpu)
	awk -v c="$1" -v d="$2" -v s="$3" -v k="$4" '$2==c && $3==d && $4==s {print $1, $k}' "$RAW"
}
mbps_of() { awk -v b="$SIZE_BYTES" '{printf "%s %.1f\n", $1, b/1e6/$2}'; }
ratios() { # cipher dir server: per-round MB/s ratio server / openssh
	join <(col "$1" "$2" "$3" 5 | sort -k1,1) <(col "$1" "$2" openssh 5 | sort -k1,1) | awk '{print $3/$2}'
}
cpu_per_gib() { col "$1" "$2" "$3" 6 | awk -v b="$SIZE_BYTES" '{print $2/(b/1073741824)}' | stats | cut -d' ' -f1; }

TABLE=$WORK/table.md
{
	echo "Server CPU is per GiB transferred (user+system, the whole process tree for OpenSSH). MB/s are medians"
	echo "of $ROUNDS rounds; ratios are the median of the per-round ratios to OpenSSH (min–max), the servers' order rotating each round."
	echo
	printf '| cipher | direction |'
	for s in "${SERVERS[@]}"; do printf ' %s MB/s |' "${LABEL[$s]}"; done
	for s in "${SERVERS[@]}"; do [[ $s == openssh ]] || printf ' %s / OpenSSH |' "${LABEL[$s]}"; done
	for s in "${SERVERS[@]}"; do printf ' CPU s/GiB %s |' "${LABEL[$s]}"; done
	echo
	printf '|---|---|'
	for _ in "${SERVERS[@]}"; do printf -- '---:|---:|'; done
	for _ in $(seq 2 ${#SERVERS[@]}); do printf -- '---:|'; done
	echo
	for cipher in "${CASES[@]}"; do
		if [[ $cipher == default ]]; then
			cdesc="client default:"
			for s in "${SERVERS[@]}"; do cdesc+=" ${LABEL[$s]%% *} ${DEFAULT_CIPHER[$s]};"; done
			cdesc=${cdesc%;}
		else
			cdesc=$cipher
		fi
		for dir in upload download; do
			printf '| %s | %s |' "$cdesc" "$dir"
			for s in "${SERVERS[@]}"; do printf ' %s |' "$(col "$cipher" "$dir" "$s" 5 | mbps_of | awk '{print $2}' | stats | cut -d' ' -f1)"; done
			for s in "${SERVERS[@]}"; do
				[[ $s == openssh ]] && continue
				read -r m lo hi < <(ratios "$cipher" "$dir" "$s" | stats)
				printf ' **%s** (%s–%s) |' "$m" "$lo" "$hi"
			done
			for s in "${SERVERS[@]}"; do printf ' %s |' "$(cpu_per_gib "$cipher" "$dir" "$s")"; done
			echo
		done
	done
	echo
	if ((CONC_N > 0)); then
		echo "**$CONC_N concurrent uploads of $CONC_MB MiB** from 127.0.0.1, one connection each, default connection settings"
		echo "(sshd: \`MaxStartups $((CONC_N + 10))\`). All $CONC_N sessions log in and wait at a barrier, then upload at once. Memory is the PSS"
		echo "summed over the server's process tree: idle before the clients connect, with the $CONC_N sessions connected and waiting,"
		echo "and the peak during the uploads (sampled every 0.1 s); per session = (figure − idle) / $CONC_N. Median of $CONC_ROUNDS rounds."
		echo
		echo "| server | accepted | wall s | server CPU s | idle MiB | $CONC_N connected MiB | peak MiB | per session connected MiB | per session peak MiB |"
		echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
		for s in "${SERVERS[@]}"; do
			awk -v s="$s" -v n="$CONC_N" -v label="${LABEL[$s]}" '
				function med(a, k,   i, j, t) { for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
					return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2 }
				$2 == s { k++; ok[k] = $3; w[k] = $4; pk[k] = $5 / 1024; id[k] = $6 / 1024; cn[k] = $7 / 1024; cpu[k] = $8
					pc[k] = ($7 - $6) / 1024 / n; pp[k] = ($5 - $6) / 1024 / n; okmin = (k == 1 || $3 < okmin) ? $3 : okmin }
				END { if (k) printf "| %s | %d / %d (lowest of %d rounds) | %.2f | %.2f | %.1f | %.1f | %.1f | %.2f | %.2f |\n", label, okmin, n, k,
					med(w, k), med(cpu, k), med(id, k), med(cn, k), med(pk, k), med(pc, k), med(pp, k) }' "$CONC"
		done
		echo
	fi
	echo "Load average (1, 5, 15 min) at the start: $LOAD_START; at the end: $LOAD_END ($(nproc) CPUs)."
	echo
	echo "<details><summary>Every transfer (round, cipher, direction, server, seconds, server CPU seconds)</summary>"
	echo
	echo "| round | cipher | direction | server | s | MB/s | server CPU s |"
	echo "|---:|---|---|---|---:|---:|---:|"
	while read -r r c d s t cpu; do
		printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$r" "$c" "$d" "${LABEL[$s]}" "$t" \
			"$(awk -v b="$SIZE_BYTES" -v t="$t" 'BEGIN{printf "%.1f", b/1e6/t}')" "$cpu"
	done <"$RAW"
	echo
	echo "</details>"
} >"$TABLE"

GEN=$WORK/generated.md
{
	echo "<!-- BEGIN GENERATED by bench/sftp-throughput.sh; do not edit by hand, the next run replaces it -->"
	echo "## Latest run: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	[[ -n ${NOTE:-} ]] && { echo "$NOTE"; echo; }
	echo "| | |"
	echo "|---|---|"
	echo "| machine | $(nproc) CPUs, $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo), $(awk '/^MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, kernel $(uname -r), $(df -PT "$WORK" | awk 'NR==2{print $2}') |"
	echo "| software | ${LABEL[pigp]}${BEFORE:+, ${LABEL[before]}}, $GO_VERSION, $OPENSSH_VERSION (client and server) |"
	echo "| file | $SIZE_MB MiB of /dev/urandom; SHA-256 checked after every download and in pigp's depots.csv |"
	echo "| transfers | OpenSSH \`sftp -b\` with its defaults (requests, limits@openssh.com), 127.0.0.1, ed25519 key, MB = 10^6 bytes; downloads written to $([[ $DL_DIR == /dev/shm/* ]] && echo "tmpfs (/dev/shm)" || echo "the work directory") |"
	echo "| pigp | \`pigp serve\`, default settings, SQLite; uploads hashed (SHA-256), fsynced, renamed, directory fsynced before CLOSE is answered |"
	echo "| OpenSSH | \`sshd -D\`, \`Subsystem sftp internal-sftp\`, upload to a temporary directory, no fsync |"
	echo "| reproduce | \`SIZE_MB=$SIZE_MB ROUNDS=$ROUNDS BEFORE=${BEFORE:-\"\"} bench/sftp-throughput.sh\` (as root) |"
	echo
	cat "$TABLE"
	echo "<!-- END GENERATED -->"
} >"$GEN"

echo
cat "$TABLE"
echo

if [[ $RESULTS_FILE != - ]]; then
	python3 - "$GEN" "$RESULTS_FILE" <<'PY'
import re, sys
block = open(sys.argv[1]).read().rstrip("\n")
path = sys.argv[2]
try:
    text = open(path).read()
except FileNotFoundError:
    text = "# Benchmarks\n"
pat = re.compile(r"<!-- BEGIN GENERATED by bench/sftp-throughput\.sh.*?<!-- END GENERATED -->", re.S)
if pat.search(text):
    text = pat.sub(lambda m: block, text)
else:
    text = text.rstrip("\n") + "\n\n## SFTP throughput (issue 14)\n\n" + block + "\n"
open(path, "w").write(text)
PY
	log "wrote $RESULTS_FILE"
fi
