#!/usr/bin/env bash
# check.sh: verify the spin model of the COW, pin and fork protocol, and
# that every mutant dies. The model is compiled once: the scenario and the
# mutant are chosen when pan runs (config.pml), and the runs go in parallel,
# one per CPU. One line per run: what ran, the verdict, the states stored,
# the time pan took; then the compile time and the wall time.
#
#   model/check.sh            the base scenarios, then every mutant
#   model/check.sh -large     the larger configuration too (scenario wide)
#   model/check.sh -trails D  keep each mutant's counterexample in D, with a
#                             pan that replays it (the command is printed)
#   model/check.sh -j N       N runs at a time (default: nproc)
#
# It fails if a base scenario has a counterexample, if a mutant survives
# every scenario, or if a guard listed as redundant turns out not to be.
# Needs spin and a C compiler (Debian: spin, gcc).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

large=0
trails=""
jobs=$(nproc 2>/dev/null || echo 2)
while [ $# -gt 0 ]; do
	case $1 in
	-large) large=1 ;;
	-trails) trails=$(mkdir -p "$2" && cd "$2" && pwd); shift ;;
	-j) jobs=$2; shift ;;
	*) echo "usage: $0 [-large] [-trails dir] [-j n]" >&2; exit 2 ;;
	esac
	shift
done

command -v spin >/dev/null || { echo "check.sh: spin is not installed (Debian package spin)" >&2; exit 1; }
CC=${CC:-cc}

# The base scenarios (scenarios.pml), the largest first; the largest is
# run as two halves (the parent's folio starting as a huge entry, or split
# into a leaf), so that the CPUs share it.
base=(reuse/huge reuse/leaf zapwrite drop zapread gupfast mprotect getexit)

# Each mutant removes one guard (config.pml); the scenario listed first is
# the one expected to kill it, the others are tried if it does not.
mutants=(
	"NO_PTE_SAME reuse"		# wp_page_copy installs without the pte_same recheck
	"NO_EXCL_RECHECK reuse"		# ... without the "became exclusive meanwhile" recheck
	"NO_GUPFAST_SEQ gupfast"	# GUP-fast ignores wpSeq (the begin check and Unchanged)
	"NO_FORK_DRAIN gupfast"		# Fork waits for no lockless section
	"NO_FORK_COPY_PINNED gupfast"	# Fork shares the exclusive pages of pinned folios
	"NO_REUSE_REFCOUNT getexit"	# the reuse test ignores references (CVE-2020-29374)
	"NO_WRPROTECT_LEFT drop"	# a dropped shared leaf is left writable
	"CLOSE_NO_WRPROTECT drop"	# issue 11 (a): Close leaves a referenced leaf writable
	"NO_HELD_HINT drop"		# a Get does not mark the leaf MaybeHeld
	"PIN_AFTER_RECHECK gupfast"	# issue 11 (b): the pincount comes after the recheck
	"NO_SEQ_RECHECK zapread"	# readRun returns its copy without the generation recheck
	"NO_GRACE_PERIOD zapwrite"	# a zap drops references before Synchronize
	"NO_CLEAR_FLUSH zapread"	# Leaf.Clear does not bump the generation
	"NO_SHARED_CHECK zapwrite"	# a lockless write goes through a shared leaf
	"NO_WRITE_RECHECK zapwrite"	# the code today: no generation recheck before a write
)
# Guards the model shows redundant: removing one alone must verify, in
# each scenario listed (a run each).
redundant=(
	"NO_GUPFAST_RECHECK gupfast"	# GUP-fast's Unchanged: Fork's drain already excludes it
	"NO_GUP_DRAIN gupfast"		# Fork's drain of GUP-fast: Unchanged already undoes it
	"NO_GUP_DRAIN drop"		# ... and a fast Get is a reference from before the Fork
)
scenarios=(gupfast reuse getexit drop mprotect zapread zapwrite)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here"/*.pml "$work"/
start=$(date +%s%N)
secs() { awk -v d=$(($2 - $1)) 'BEGIN { printf "%.1f", d / 1e9 }'; }

# One compile for every run, at -O0: pan.c is large, and gcc -O1 takes
# minutes over it. But pan spends most of its time in two small functions
# of its own, the state hash and the hash-table store: those alone are
# compiled with -O2 (a function attribute), a third off every run.
# -DNOCOMP: no state compression, which costs more time than the memory
# it saves at these sizes.
(
	cd "$work"
	spin -a anonfolio.pml >spin.out 2>&1 || { cat spin.out >&2; exit 1; }
	sed -i -E 's/^(d_sfh\(uchar \*s, int len\))$/__attribute__((optimize("O2"))) \1/; s/^(h_store\(char \*vin, int nin\).*)$/__attribute__((optimize("O2"))) \1/' pan.c
	pid=""
	if [ $large = 1 ]; then # COLLAPSE: the wide scenario needs the memory
		$CC -O0 -DSAFETY -DCOLLAPSE -w -o pan.large pan.c &
		pid=$!
	fi
	$CC -O0 -DSAFETY -DNOCOMP -w -o pan pan.c
	[ -z "$pid" ] || wait "$pid"
)
compiled=$(date +%s%N)

# pan_run DIR SCENARIO[/INIT] MUTANT PAN W: one pan run in DIR; writes
# DIR/res: errors, states, seconds, what broke. -b: a search deeper than
# -m (the deepest is under 600 steps) is an error, not a silent cut. A
# hash table of 2^W slots: 2^21 for up to a few million states (a larger
# one costs more to clear than it saves).
pan_run() {
	local dir=$1 sc=${2%/*} init="" mut=$3 bin=$4 w=$5 t0 t1
	[ "$2" = "$sc" ] || init=${2#*/}
	mkdir -p "$dir"
	(
		cd "$dir"
		t0=$(date +%s%N)
		SCENARIO=$sc INIT=$init MUTANT=$mut "$bin" -n -b -m10000 -w"$w" >pan.out 2>&1 || true
		t1=$(date +%s%N)
		err=$(grep -oE 'errors: [0-9]+' pan.out | grep -oE '[0-9]+' || echo '?')
		states=$(grep -oE '[0-9]+ states, stored' pan.out | grep -oE '^[0-9]+' || echo '?')
		what=$(grep -E '^pan:[0-9]+:|^pan: [A-Z]|depth too small|SCENARIO|MUTANT|INIT' pan.out | head -1 | sed 's/ (at depth.*//; s/^pan:[0-9]*: //' | cut -c1-70 || true)
		printf '%s\t%s\t%s\t%s\n' "$err" "$states" "$(secs "$t0" "$t1")" "$what" >res
	)
}

# job KIND NAME SCENARIOS...: a base run, a mutant (tried on each scenario
# until one kills it) or a redundant guard. Writes $work/out/N.
job() {
	local n=$1 kind=$2 name=$3; shift 3
	local sc mut="" dir line err states t what bin=$work/pan w=21
	case $kind in mutant | redundant) mut=$name ;; esac
	[ "$kind" = large ] && { bin=$work/pan.large; w=26; }
	for sc in "$@"; do
		dir=$work/run/$n.${sc%/*}
		pan_run "$dir" "$sc" "$mut" "$bin" "$w"
		IFS=$'\t' read -r err states t what <"$dir/res"
		case $kind in
		base | large)
			if [ "$err" = 0 ]; then v=ok; else v=FAILED; fi
			line=$(printf '%-9s %-20s %-10s %-9s %10s states %6ss  %s' "$kind" "$name" "$v" "" "$states" "$t" "$what")
			break ;;
		mutant)
			if [ "$err" != 0 ] && [ "$err" != '?' ]; then
				line=$(printf '%-9s %-20s %-10s %-9s %10s states %6ss  %s' mutant "$name" killed "$sc" "$states" "$t" "$what")
				if [ -n "$trails" ]; then
					cp "$dir/anonfolio.pml.trail" "$trails/$name.trail"
					echo "$sc" >"$trails/$name.scenario"
				fi
				break
			fi
			line=$(printf '%-9s %-20s %-10s %-9s %10s %6s   %s' mutant "$name" SURVIVED "" "" "" "no scenario finds a counterexample") ;;
		redundant)
			if [ "$err" = 0 ]; then v=redundant; else v=UNEXPECTED; fi
			line=$(printf '%-9s %-20s %-10s %-9s %10s states %6ss  %s' mutant "$name" "$v" "$sc" "$states" "$t" "verifies: another guard implies it")
			break ;;
		esac
	done
	echo "$line" >"$work/out/$n"
}

mkdir -p "$work/out" "$work/run"
list=()
for sc in "${base[@]}"; do list+=("base $sc $sc"); done
for m in "${mutants[@]}"; do
	set -- $m
	rest=$(printf '%s\n' "${scenarios[@]}" | grep -vx "$2" | tr '\n' ' ')
	list+=("mutant $1 $2 $rest")
done
for m in "${redundant[@]}"; do list+=("redundant $m"); done
[ $large = 1 ] && list=("large wide wide" "${list[@]}")

n=0
for j in "${list[@]}"; do
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
	job $n $j &
	n=$((n + 1))
done
wait

failed=0
for i in $(seq 0 $((n - 1))); do
	line=$(cat "$work/out/$i")
	echo "$line"
	case $line in *FAILED* | *SURVIVED* | *UNEXPECTED*) failed=1 ;; esac
done
end=$(date +%s%N)
echo "compile $(secs "$start" "$compiled")s, all runs $(secs "$compiled" "$end")s with $jobs at a time, total $(secs "$start" "$end")s"
if [ -n "$trails" ]; then
	cp "$work"/*.pml "$work/pan" "$trails/"
	echo "counterexamples in $trails; replay one with:"
	echo "  cd $trails && SCENARIO=\$(cat NAME.scenario) MUTANT=NAME ./pan -r NAME.trail"
fi
if [ $failed = 1 ]; then
	echo "model check FAILED"
	exit 1
fi
echo "model check passed"
