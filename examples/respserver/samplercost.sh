#!/usr/bin/env bash
# samplercost.sh: what reading /proc/PID/smaps_rollup every 20 ms (as
# compare.sh did for the whole of a +BGSAVE run until commit 7ed519d)
# costs the server it samples. respserver with 500k keys of 256 bytes;
# three rounds of SET and GET -P16, each run plain, with the sampler, from a
# BGSAVE on, from a BGSAVE on with the sampler, and plain again. Needs
# redis-cli and redis-benchmark (compare.sh installs them). About 4 minutes.
#
#   examples/respserver/samplercost.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
KEYS=500000 VALUE=256 PORT=6395
work=$(mktemp -d)
go build -o "$work/respserver" ./examples/respserver
"$work/respserver" -addr "127.0.0.1:$PORT" -dir "$work" -save "" -arena $((KEYS * (VALUE + 128) * 3 + (512 << 20))) 2>"$work/log" &
pid=$!
trap 'kill $pid; rm -rf $work' EXIT
for _ in $(seq 100); do redis-cli -p $PORT PING >/dev/null 2>&1 && break; sleep 0.1; done
awk -v n="$KEYS" -v v="$VALUE" 'BEGIN { srand(1)
 for (i = 0; i < n; i++) { k = sprintf("key:%012d", i); s = ""
  while (length(s) < v) s = s sprintf("%08x", int(rand() * 4294967296)); s = substr(s, 1, v)
  printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, v, s } }' >"$work/data.resp"
redis-cli -p $PORT --pipe <"$work/data.resp" >/dev/null
mem_kb() { local t=0 line; while read -r line; do case $line in "$2:"*) set -- "$1" "$2" $line; t=$((t+$4));; esac; done </proc/$1/smaps_rollup; echo $t; }
sampler() { while [ ! -e $work/stop ]; do mem_kb $pid Rss >/dev/null; mem_kb $pid Pss >/dev/null; sleep 0.02; done; }
bench() { redis-benchmark -p $PORT -t $1 -n 1000000 -r $KEYS -d $VALUE -c 50 -P 16 --csv 2>/dev/null | tr -d '"' | awk -F, -v t="${1^^}" '$1 == t {print $2}'; }
for round in 1 2 3; do
  for t in set get; do
    a=$(bench $t)
    rm -f $work/stop; sampler & s=$!; b=$(bench $t); touch $work/stop; wait $s
    redis-cli -p $PORT BGSAVE >/dev/null; c=$(bench $t)
    while [ "$(redis-cli -p $PORT INFO persistence | tr -d '\r' | awk -F: '$1=="rdb_bgsave_in_progress"{print $2}')" = 1 ]; do sleep 0.05; done
    rm -f $work/stop; sampler & s=$!; redis-cli -p $PORT BGSAVE >/dev/null; d=$(bench $t); touch $work/stop; wait $s
    while [ "$(redis-cli -p $PORT INFO persistence | tr -d '\r' | awk -F: '$1=="rdb_bgsave_in_progress"{print $2}')" = 1 ]; do sleep 0.05; done
    e=$(bench $t)
    echo "round $round $t -P16: plain $a | sampler $b | bgsave $c | bgsave+sampler $d | plain after $e"
  done
done
