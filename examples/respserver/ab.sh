#!/usr/bin/env bash
# ab.sh: configurations of respserver (and redis-server) side by side, in
# alternated rounds, without saves: redis-benchmark's throughput and p99,
# and each server's CPU per request (utime+stime from /proc/PID/stat).
# It is how the README's A/B figures of the network layer were taken.
#
# Each argument is a configuration: "redis" for redis-server, else
# respserver's flags, with environment settings in front if any:
#
#   examples/respserver/ab.sh redis "-loops 1" "-loops 2" "-loops 0"
#   examples/respserver/ab.sh "" "GOMAXPROCS=1"
#   KEYS=500000 TESTS=set,get ROUNDS=5 examples/respserver/ab.sh redis ""
#
# The data: redis-benchmark SETs of VALUE-byte values over KEYS random keys
# ("key:%012d", three times KEYS of them, -P 16), the same for each server.
# Each round runs every test against every configuration, the order
# rotated by one each round. Needs redis-server and redis-tools (compare.sh
# installs them).
set -euo pipefail
cd "$(dirname "$0")/../.."

KEYS=${KEYS:-100000}
VALUE=${VALUE:-256}
ROUNDS=${ROUNDS:-5}
TESTS=${TESTS:-set,get}
PIPE=${PIPE:-1}
CLIENTS=${CLIENTS:-50}
REQS=${REQS:-200000}
BASEPORT=${BASEPORT:-6420}
[ $# -gt 0 ] || set -- redis ""

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/respserver" ./examples/respserver

configs=("$@")
ports=()
for i in "${!configs[@]}"; do
	port=$((BASEPORT + i)) cfg=${configs[$i]}
	if [ "$cfg" = redis ]; then
		redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
			--logfile "$work/redis.$port.log" &
	else
		envs=() flags=()
		for w in $cfg; do
			if [[ $w =~ ^[A-Z_][A-Z0-9_]*= ]]; then envs+=("$w"); else flags+=("$w"); fi
		done
		env "${envs[@]}" "$work/respserver" -addr "127.0.0.1:$port" -dir "$work" -save "" \
			-arena $((KEYS * (VALUE + 128) * 3 + (512 << 20))) "${flags[@]}" 2>"$work/anon.$port.log" &
	fi
	pids+=($!)
	ports+=("$port")
done
for port in "${ports[@]}"; do
	for _ in $(seq 100); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.1; done
	redis-benchmark -p "$port" -t set -r "$KEYS" -n $((3 * KEYS)) -d "$VALUE" -c "$CLIENTS" -P 16 -q >/dev/null
done

HZ_TICKS=$(getconf CLK_TCK)
cpu_ticks() {
	local f
	read -r -a f <"/proc/$1/stat"
	echo $((f[13] + f[14]))
}

results=$work/results.tsv # test config rps p99 cpu_us
n=${#configs[@]}
for round in $(seq "$ROUNDS"); do
	for t in ${TESTS//,/ }; do
		line="round $round $t -P$PIPE:"
		for k in $(seq 0 $((n - 1))); do
			i=$(((k + round - 1) % n))
			a=$(cpu_ticks "${pids[$i]}")
			read -r rps p99 < <(redis-benchmark -p "${ports[$i]}" -t "$t" -r "$KEYS" -n "$REQS" -d "$VALUE" \
				-c "$CLIENTS" -P "$PIPE" --csv 2>/dev/null | tr -d '"' | awk -F, -v t="${t^^}" '$1 == t { print $2, $7 }')
			b=$(cpu_ticks "${pids[$i]}")
			cpu=$(awk -v d=$((b - a)) -v hz="$HZ_TICKS" -v n="$REQS" 'BEGIN { printf "%.1f", d * 1e6 / hz / n }')
			printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$i" "$rps" "$p99" "$cpu" >>"$results"
			line="$line  [${configs[$i]:-default}] ${rps%.*} p99=$p99 ${cpu}us"
		done
		echo "$line"
	done
done

echo
echo "medians over $ROUNDS rounds ($KEYS keys, $VALUE-byte values, $CLIENTS clients, -P $PIPE, $REQS requests a run)"
awk -F'\t' -v names="$(printf '%s\n' "${configs[@]}")" '
	BEGIN { split(names, name, "\n") }
	{ k = $1 SUBSEP $2; c[k]++; rps[k, c[k]] = $3; p99[k, c[k]] = $4; cpu[k, c[k]] = $5
	  if (!seen[$1]++) tests[++nt] = $1; if ($2 + 1 > nc) nc = $2 + 1 }
	function med(a, k, cnt,   v, j, m, x) {
		for (j = 1; j <= cnt; j++) v[j] = a[k, j] + 0
		for (j = 1; j <= cnt; j++) for (m = j + 1; m <= cnt; m++) if (v[m] < v[j]) { x = v[j]; v[j] = v[m]; v[m] = x }
		return cnt % 2 ? v[(cnt + 1) / 2] : (v[cnt / 2] + v[cnt / 2 + 1]) / 2
	}
	END {
		for (ti = 1; ti <= nt; ti++) for (i = 0; i < nc; i++) {
			k = tests[ti] SUBSEP i; nm = name[i + 1] == "" ? "default" : name[i + 1]
			printf "  %-4s %-28s rps %8.0f  p99 %6.3f ms  CPU %5.1f us/request\n", tests[ti], nm, med(rps, k, c[k]), med(p99, k, c[k]), med(cpu, k, c[k])
		}
	}' "$results"
