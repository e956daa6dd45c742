#!/usr/bin/env bash
# compare.sh: Redis and respserver side by side. Both get the same data on
# loopback, then redis-benchmark writes to each while a BGSAVE runs, and the
# script prints: BGSAVE duration, fork latency, p50/p99 write latency during
# the save (and without one, for reference), COW bytes and peak RSS.
# Installs Debian's redis-server and redis-tools if missing (apt-get: run as
# root or with sudo). Not run by CI.
#
#   examples/respserver/compare.sh            # 1M keys of 256 bytes
#   KEYS=100000 examples/respserver/compare.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

KEYS=${KEYS:-1000000}
VALUE=${VALUE:-256}
REQS=${REQS:-200000}
CLIENTS=${CLIENTS:-50}
RPORT=${RPORT:-6390}
APORT=${APORT:-6391}

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get install -y redis-server redis-tools ||
		{ $sudo apt-get update && $sudo apt-get install -y redis-server redis-tools; }
fi

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/redis" "$work/anon"
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no \
	--dir "$work/redis" --logfile "$work/redis.log" &
pids+=($!)
redis_pid=$!
go build -o "$work/respserver" ./examples/respserver
"$work/respserver" -addr "127.0.0.1:$APORT" -dir "$work/anon" -arena $((KEYS * VALUE * 4 + (256 << 20))) 2>"$work/anon.log" &
pids+=($!)
anon_pid=$!
for port in "$RPORT" "$APORT"; do
	for _ in $(seq 100); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.1; done
done

# The same data for both: KEYS keys of VALUE pseudo-random hex bytes, as
# RESP, piped in with redis-cli --pipe.
awk -v n="$KEYS" -v v="$VALUE" 'BEGIN {
	srand(1)
	for (i = 0; i < n; i++) {
		k = sprintf("key:%012d", i); s = ""
		while (length(s) < v) s = s sprintf("%08x", int(rand() * 4294967296))
		s = substr(s, 1, v)
		printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, v, s
	}
}' >"$work/data.resp"

field() { redis-cli -p "$1" INFO "$2" | tr -d '\r' | awk -F: -v f="$3" '$1 == f { print $2 }'; }
hwm() { awk '/VmHWM/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$1/status"; }
bench() { # port -> "p50 p99 rps" of a SET run over the keyspace
	redis-benchmark -p "$1" -t set -n "$REQS" -r "$KEYS" -d "$VALUE" -c "$CLIENTS" --csv 2>/dev/null |
		tr -d '"' | awk -F, '$1 == "SET" { printf "%.3f %.3f %.0f\n", $5, $7, $2 }'
}

declare -A out
measure() { # name port pid
	local name=$1 port=$2 pid=$3
	redis-cli -p "$port" --pipe <"$work/data.resp" >/dev/null
	out[$name,keys]=$(redis-cli -p "$port" DBSIZE)
	read -r p50 p99 rps < <(bench "$port")
	out[$name,base]="$p50 / $p99 ms, $rps/s"
	echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true
	# BGSAVE, timed by polling INFO every 10 ms, while redis-benchmark writes.
	local t0 t1
	t0=$(date +%s%N)
	redis-cli -p "$port" BGSAVE >/dev/null
	(
		while [ "$(field "$port" persistence rdb_bgsave_in_progress)" = 1 ]; do sleep 0.01; done
		echo $((($(date +%s%N) - t0) / 1000000)) >"$work/$name.savems"
	) &
	local poller=$!
	read -r p50 p99 rps < <(bench "$port")
	local b1
	b1=$(($(date +%s%N) - t0))
	wait "$poller"
	out[$name,save]="$(cat "$work/$name.savems") ms"
	out[$name,during]="$p50 / $p99 ms, $rps/s"
	out[$name,benchms]="$((b1 / 1000000)) ms"
	out[$name,fork]="$(field "$port" stats latest_fork_usec) µs"
	out[$name,status]=$(field "$port" persistence rdb_last_bgsave_status)
	out[$name,cow]="$(($(field "$port" persistence rdb_last_cow_size) >> 20)) MiB"
	out[$name,hwm]=$(hwm "$pid")
}

measure redis "$RPORT" "$redis_pid"
measure anonfolio "$APORT" "$anon_pid"

printf '\n%s keys of %s bytes; redis-benchmark SET, %s requests, %s clients, random keys\n\n' \
	"$KEYS" "$VALUE" "$REQS" "$CLIENTS"
row() { printf '%-44s %-28s %-28s\n' "$1" "${out[redis,$2]}" "${out[anonfolio,$2]}"; }
printf '%-44s %-28s %-28s\n' "" "redis-server $(redis-server --version | awk '{print $3}')" "respserver (anonfolio)"
row "keys loaded" keys
row "BGSAVE duration" save
row "BGSAVE status" status
row "fork latency (latest_fork_usec)" fork
row "SET p50 / p99, rps, no save running" base
row "SET p50 / p99, rps, from BGSAVE on" during
row "  (that benchmark ran for)" benchms
row "COW bytes (rdb_last_cow_size)" cow
row "server peak RSS (VmHWM, reset before save)" hwm
echo
echo "Redis's child process is not in its VmHWM: its extra memory is the COW bytes."
echo "respserver's VmHWM includes its arena: the store, and the pages the snapshot held."
