#!/usr/bin/env bash
# compare.sh: redis-server and respserver side by side, in interleaved
# rounds, so that the noise of a shared machine falls on both alike.
#
# Both servers get the same data (KEYS keys "key:%012d" of VALUE bytes,
# the names redis-benchmark's -r uses), then, ROUNDS times, each case runs
# against each server in turn (redis first in odd rounds, respserver first
# in even ones): redis-benchmark SET and GET, without pipelining and with
# -P 16, CLIENTS clients, random keys over the data set, with no save
# running and from a BGSAVE on. The script prints every round's figures
# and the median ratio respserver/redis of throughput, p50, p99 and max
# latency, then what each BGSAVE cost: duration, fork latency, COW bytes
# and peak memory of the server and its child processes, sampled.
#
# Both run without save points (save "") and without AOF; Redis with its
# defaults otherwise (RDB compression on). Installs Debian's redis-server
# and redis-tools if missing (apt-get: run as root or with sudo).
# memtier_benchmark is not packaged by Debian 12, so it is not used.
#
#   examples/respserver/compare.sh            # 500k keys of 256 bytes, 3 rounds
#   examples/respserver/compare.sh -quick     # 20k keys, 1 round: a smoke test for CI
#   KEYS=1000000 ROUNDS=5 examples/respserver/compare.sh
#   ANON_FLAGS="-loops 0" examples/respserver/compare.sh   # respserver's flags: a goroutine per connection
set -euo pipefail
cd "$(dirname "$0")/../.."

QUICK=0
[ "${1:-}" = "-quick" ] && QUICK=1
if [ $QUICK = 1 ]; then
	KEYS=${KEYS:-20000} ROUNDS=${ROUNDS:-1} REQS=${REQS:-20000} PREQS=${PREQS:-100000}
fi
KEYS=${KEYS:-500000}
VALUE=${VALUE:-256}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-50}
REQS=${REQS:-200000}    # requests of a run without pipelining
PREQS=${PREQS:-1000000} # with -P 16
RPORT=${RPORT:-6390}
APORT=${APORT:-6391}

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-benchmark >/dev/null && command -v redis-cli >/dev/null || need+=(redis-tools)
if [ ${#need[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get install -y --no-install-recommends "${need[@]}" ||
		{ $sudo apt-get update && $sudo apt-get install -y --no-install-recommends "${need[@]}"; }
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
redis_pid=$!
pids+=("$redis_pid")
go build -o "$work/respserver" ./examples/respserver
# shellcheck disable=SC2086 # ANON_FLAGS is split into flags
"$work/respserver" -addr "127.0.0.1:$APORT" -dir "$work/anon" -save "" ${ANON_FLAGS:-} \
	-arena $((KEYS * (VALUE + 128) * 3 + (512 << 20))) 2>"$work/anon.log" &
anon_pid=$!
pids+=("$anon_pid")
for port in "$RPORT" "$APORT"; do
	for _ in $(seq 100); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.1; done
done

# The same data for both: pseudo-random hex values, as RESP, piped in.
awk -v n="$KEYS" -v v="$VALUE" 'BEGIN {
	srand(1)
	for (i = 0; i < n; i++) {
		k = sprintf("key:%012d", i); s = ""
		while (length(s) < v) s = s sprintf("%08x", int(rand() * 4294967296))
		s = substr(s, 1, v)
		printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, v, s
	}
}' >"$work/data.resp"
for port in "$RPORT" "$APORT"; do
	redis-cli -p "$port" --pipe <"$work/data.resp" >/dev/null
	[ "$(redis-cli -p "$port" DBSIZE)" = "$KEYS" ] || { echo "loading port $port failed" >&2; exit 1; }
done

field() { redis-cli -p "$1" INFO "$2" | tr -d '\r' | awk -F: -v f="$3" '$1 == f { print $2 }'; }
port_of() { [ "$1" = redis ] && echo "$RPORT" || echo "$APORT"; }
pid_of() { [ "$1" = redis ] && echo "$redis_pid" || echo "$anon_pid"; }

# mem_kb pid field: the field (Rss or Pss, kB) of pid and its children,
# summed: a fork's child shares most of its pages with the parent, and
# Rss counts them in both (Pss splits them). Bash builtins only, so that
# sampling costs little.
mem_kb() {
	local total=0 p line kids=()
	local list=("$1")
	if [ -r "/proc/$1/task/$1/children" ]; then
		{ read -r -a kids <"/proc/$1/task/$1/children"; } 2>/dev/null || true
		list+=("${kids[@]}")
	fi
	for p in "${list[@]}"; do
		[ -r "/proc/$p/smaps_rollup" ] || continue
		{ while read -r line; do
			if [[ $line =~ ^$2:\ +([0-9]+) ]]; then total=$((total + BASH_REMATCH[1])); fi
		done <"/proc/$p/smaps_rollup"; } 2>/dev/null || true # a child may exit meanwhile
	done
	echo "$total"
}

# sample pid out: the peak Rss and Pss sums every 20 ms until out.stop exists.
sample() {
	local rss=0 pss=0 r p
	while [ ! -e "$2.stop" ]; do
		r=$(mem_kb "$1" Rss) p=$(mem_kb "$1" Pss)
		((r > rss)) && rss=$r
		((p > pss)) && pss=$p
		sleep 0.02
	done
	echo "$rss $pss" >"$2"
}

# bench server test pipeline: "rps p50 p99 max" of one redis-benchmark run.
bench() {
	local n=$REQS out
	[ "$3" -gt 1 ] && n=$PREQS
	out=$(redis-benchmark -p "$(port_of "$1")" -t "$2" -n "$n" -r "$KEYS" -d "$VALUE" -c "$CLIENTS" -P "$3" --csv 2>/dev/null |
		tr -d '"' | awk -F, -v t="${2^^}" '$1 == t { print $2, $5, $7, $8 }')
	if [ -z "$out" ]; then
		echo "redis-benchmark against $1 gave no result" >&2
		kill -TERM $$
	fi
	echo "$out"
}

# cpu_ticks pid: the user and system time pid has used, in clock ticks.
HZ_TICKS=$(getconf CLK_TCK)
cpu_ticks() {
	local f
	read -r -a f <"/proc/$1/stat"
	# After "pid (comm)": the comm has no spaces here (redis-server, respserver).
	echo $((f[13] + f[14]))
}

# save_ms server: the last BGSAVE's duration: Redis's log (fork to "DB saved
# on disk", ms stamps), respserver's rdb_last_bgsave_time_usec.
save_ms() {
	if [ "$1" = redis ]; then
		awk '/Background saving started/ { s = $5 } /DB saved on disk/ { e = $5 }
			function ms(t, a) { split(t, a, /[:.]/); return ((a[1] * 60 + a[2]) * 60 + a[3]) * 1000 + a[4] }
			END { print ms(e) - ms(s) }' "$work/redis.log"
	else
		echo $(($(field "$APORT" persistence rdb_last_bgsave_time_usec) / 1000))
	fi
}

results=$work/results.tsv # round case server rps p50 p99 max [cpu_us]
saves=$work/saves.tsv     # round case server save_ms fork_us cow_bytes peak_rss_kb peak_pss_kb
echo "$(date -u +%FT%TZ) redis-server $(redis-server --version | awk '{print $3}'), respserver $(git rev-parse --short HEAD)" >&2

run_case() { # round case server test pipeline withsave
	local srv=$3 port pid
	port=$(port_of "$srv") pid=$(pid_of "$srv")
	if [ "$6" = 0 ]; then
		# The server's CPU time per request (user and system, from
		# /proc/PID/stat; no save runs, so it is the server's alone): the
		# figure the machine's noise moves least.
		local t0 t1 n=$REQS
		[ "$5" -gt 1 ] && n=$PREQS
		t0=$(cpu_ticks "$pid")
		read -r rps p50 p99 max < <(bench "$srv" "$4" "$5")
		t1=$(cpu_ticks "$pid")
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$srv" "$rps" "$p50" "$p99" "$max" \
			"$(((t1 - t0) * 1000000 / HZ_TICKS / n)).$(((t1 - t0) * 10000000 / HZ_TICKS / n % 10))" >>"$results"
		return
	fi
	# Memory is sampled while the save runs, and only then: reading
	# smaps_rollup every 20 ms costs the sampled server 25-35 % of its
	# throughput on this 2-core machine (measured against respserver with
	# no save at all), which would be charged to the save otherwise.
	local out=$work/sample.$srv
	rm -f "$out" "$out.stop"
	sample "$pid" "$out" &
	local sampler=$!
	redis-cli -p "$port" BGSAVE >/dev/null
	{
		while [ "$(field "$port" persistence rdb_bgsave_in_progress)" = 1 ]; do sleep 0.05; done
		touch "$out.stop"
	} &
	local watcher=$!
	read -r rps p50 p99 max < <(bench "$srv" "$4" "$5")
	wait "$watcher" "$sampler"
	read -r peak_rss peak_pss <"$out"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$srv" "$rps" "$p50" "$p99" "$max" >>"$results"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$srv" "$(save_ms "$srv")" \
		"$(field "$port" stats latest_fork_usec)" "$(field "$port" persistence rdb_last_cow_size)" \
		"$peak_rss" "$peak_pss" >>"$saves"
}

# Each server runs a case without a save, then at once from a BGSAVE on,
# so that the drop a save causes is measured between neighbouring runs.
cases=("SET 1" "GET 1" "SET 16" "GET 16")
for round in $(seq "$ROUNDS"); do
	order=(redis anonfolio)
	((round % 2 == 0)) && order=(anonfolio redis)
	for c in "${cases[@]}"; do
		read -r t p <<<"$c"
		for srv in "${order[@]}"; do
			run_case "$round" "$t -P$p" "$srv" "${t,,}" "$p" 0
			run_case "$round" "$t -P$p +BGSAVE" "$srv" "${t,,}" "$p" 1
		done
		printf 'round %d/%d: %s done\n' "$round" "$ROUNDS" "$t -P$p" >&2
	done
done

rss() { echo "$(($(mem_kb "$1" Rss) / 1024)) MiB"; }
printf '\n%s keys of %s bytes; redis-benchmark, %s clients, random keys (-r %s), %s requests (-P 16: %s); %s rounds\n' \
	"$KEYS" "$VALUE" "$CLIENTS" "$KEYS" "$REQS" "$PREQS" "$ROUNDS"
printf 'RSS after the runs: redis-server %s, respserver %s\n\n' "$(rss "$redis_pid")" "$(rss "$anon_pid")"

# Per round, then the medians and their ratios (respserver / redis).
awk -F'\t' '
	{ key = $2; k[key] = 1; n[key, $3]++; i = n[key, $3]
	  rps[key, $3, i] = $4; p50[key, $3, i] = $5; p99[key, $3, i] = $6; mx[key, $3, i] = $7
	  order[++rows] = key }
	function median(a, key, s, cnt,   v, j, m, t) {
		for (j = 1; j <= cnt; j++) v[j] = a[key, s, j]
		for (j = 1; j <= cnt; j++) for (m = j + 1; m <= cnt; m++) if (v[m] < v[j]) { t = v[j]; v[j] = v[m]; v[m] = t }
		return cnt % 2 ? v[(cnt + 1) / 2] : (v[cnt / 2] + v[cnt / 2 + 1]) / 2
	}
	function span(a, key, s, cnt,   j, lo, hi) {
		lo = hi = a[key, s, 1]
		for (j = 2; j <= cnt; j++) { if (a[key, s, j] < lo) lo = a[key, s, j]; if (a[key, s, j] > hi) hi = a[key, s, j] }
		return lo "-" hi
	}
	END {
		printf "%-18s %-10s %s\n", "case", "server", "per round: rps p50/p99/max ms"
		for (r = 1; r <= rows; r++) {
			key = order[r]; if (done[key]++) continue
			for (si = 1; si <= 2; si++) {
				s = si == 1 ? "redis" : "anonfolio"; line = ""
				for (j = 1; j <= n[key, s]; j++)
					line = line sprintf("  %7.0f %.2f/%.2f/%.2f", rps[key, s, j], p50[key, s, j], p99[key, s, j], mx[key, s, j])
				printf "%-18s %-10s%s\n", key, s, line
			}
		}
		printf "\n%-18s %10s %10s %7s | %-17s %-17s %7s | %7s %7s | %7s %7s\n", "case (medians)", "redis rps", "ours rps", "ratio",
			"p50 redis/ours", "p99 redis/ours", "ratio", "max r", "max o", "p50 x", "max x"
		for (r = 1; r <= rows; r++) {
			key = order[r]; if (done2[key]++) continue
			c = n[key, "redis"]; d = n[key, "anonfolio"]
			rr = median(rps, key, "redis", c); ra = median(rps, key, "anonfolio", d)
			p5r = median(p50, key, "redis", c); p5a = median(p50, key, "anonfolio", d)
			p9r = median(p99, key, "redis", c); p9a = median(p99, key, "anonfolio", d)
			mr = median(mx, key, "redis", c); ma = median(mx, key, "anonfolio", d)
			printf "%-18s %10.0f %10.0f %6.2fx | %7.3f/%-9.3f %7.3f/%-9.3f %6.2fx | %7.2f %7.2f | %6.2fx %6.2fx\n", key, rr, ra, ra / rr,
				p5r, p5a, p9r, p9a, p9a / p9r, mr, ma, p5a / p5r, ma / mr
		}
		printf "\nspread over the rounds (min-max):\n"
		for (r = 1; r <= rows; r++) {
			key = order[r]; if (done3[key]++) continue
			printf "%-18s rps redis %s, ours %s; p99 redis %s, ours %s\n", key, span(rps, key, "redis", n[key, "redis"]),
				span(rps, key, "anonfolio", n[key, "anonfolio"]), span(p99, key, "redis", n[key, "redis"]), span(p99, key, "anonfolio", n[key, "anonfolio"])
		}
	}' "$results"

# The servers' CPU per request without a save.
awk -F'\t' '
	$8 != "" { k = $2; if (!seen[k]++) keys[++nk] = k; n[k, $3]++; v[k, $3, n[k, $3]] = $8 }
	function med(k, s,   a, j, m, t, c) {
		c = n[k, s]; for (j = 1; j <= c; j++) a[j] = v[k, s, j] + 0
		for (j = 1; j <= c; j++) for (m = j + 1; m <= c; m++) if (a[m] < a[j]) { t = a[j]; a[j] = a[m]; a[m] = t }
		return c % 2 ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2
	}
	END {
		if (!nk) exit
		printf "\nserver CPU per request, no save (us, user+system from /proc/PID/stat; median, per round)\n"
		for (i = 1; i <= nk; i++) {
			k = keys[i]; r = med(k, "redis"); a = med(k, "anonfolio"); lr = la = ""
			for (j = 1; j <= n[k, "redis"]; j++) lr = lr " " v[k, "redis", j]
			for (j = 1; j <= n[k, "anonfolio"]; j++) la = la " " v[k, "anonfolio", j]
			printf "  %-10s redis %5.1f  ours %5.1f  %5.2fx   (redis%s; ours%s)\n", k, r, a, r ? a / r : 0, lr, la
		}
	}' "$results"

# Throughput from a BGSAVE on against without, per server: the runs are
# neighbours (the same server, one after the other).
awk -F'\t' '
	{ base = $2; sub(/ \+BGSAVE/, "", base); with = ($2 ~ /BGSAVE/); rps[$1, $3, base, with] = $4
	  if (!seen[base]++) cases[++nc] = base; if ($1 > rounds) rounds = $1 }
	END {
		printf "\nthroughput from a BGSAVE on against without (neighbouring runs): median and range of the rounds\n"
		for (ci = 1; ci <= nc; ci++) for (si = 1; si <= 2; si++) {
			b = cases[ci]; sv = si == 1 ? "redis" : "anonfolio"; n = 0
			for (r = 1; r <= rounds; r++) if (rps[r, sv, b, 0] > 0 && rps[r, sv, b, 1] > 0) v[++n] = 100 * rps[r, sv, b, 1] / rps[r, sv, b, 0] - 100
			for (j = 1; j <= n; j++) for (m = j + 1; m <= n; m++) if (v[m] < v[j]) { t = v[j]; v[j] = v[m]; v[m] = t }
			if (n) printf "  %-10s %-10s %+6.1f%%  (%+.1f%% to %+.1f%%)\n", b, sv, n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2, v[1], v[n]
		}
	}' "$results"

# What each save cost.
awk -F'\t' '
	{ s = $3; n[s]++; i = n[s]; ms[s, i] = $4; fork[s, i] = $5; cow[s, i] = $6; rss[s, i] = $7; pss[s, i] = $8 }
	function med(a, s,   v, j, m, t, cnt) {
		cnt = n[s]; for (j = 1; j <= cnt; j++) v[j] = a[s, j] + 0
		for (j = 1; j <= cnt; j++) for (m = j + 1; m <= cnt; m++) if (v[m] < v[j]) { t = v[j]; v[j] = v[m]; v[m] = t }
		return cnt % 2 ? v[(cnt + 1) / 2] : (v[cnt / 2] + v[cnt / 2 + 1]) / 2
	}
	END {
		printf "\nBGSAVE (medians of %d saves each)          %14s %14s %8s\n", n["redis"], "redis-server", "respserver", "ratio"
		printf "  duration (ms)                            %14.0f %14.0f %7.2fx\n", med(ms, "redis"), med(ms, "anonfolio"), med(ms, "anonfolio") / med(ms, "redis")
		printf "  fork latency (latest_fork_usec)          %14.0f %14.0f %7.3fx\n", med(fork, "redis"), med(fork, "anonfolio"), med(fork, "anonfolio") / med(fork, "redis")
		printf "  COW (rdb_last_cow_size, MiB)             %14.1f %14.1f %7.2fx\n", med(cow, "redis") / 1048576, med(cow, "anonfolio") / 1048576, med(cow, "anonfolio") / med(cow, "redis")
		printf "  peak RSS, server + children (MiB)        %14.0f %14.0f %7.2fx\n", med(rss, "redis") / 1024, med(rss, "anonfolio") / 1024, med(rss, "anonfolio") / med(rss, "redis")
		printf "  peak PSS, server + children (MiB)        %14.0f %14.0f %7.2fx\n", med(pss, "redis") / 1024, med(pss, "anonfolio") / 1024, med(pss, "anonfolio") / med(pss, "redis")
		printf "  (RSS counts the pages a child shares with its parent twice; PSS splits them: the memory used.)\n"
	}' "$saves"
