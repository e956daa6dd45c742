#!/usr/bin/env bash
# check.sh: verify the spin model of the COW, pin and fork protocol, and
# that every mutant dies. One line per run: what ran, the verdict, the
# states stored, the time pan took (and the compile time).
#
#   model/check.sh            the base scenarios, then every mutant
#   model/check.sh -large     the larger configuration too (scenario wide)
#   model/check.sh -trails D  keep each mutant's counterexample trail in D
#
# It fails if a base scenario has a counterexample, or if a mutant
# survives every scenario. Needs spin and a C compiler (Debian: spin, gcc).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

large=0
trails=""
while [ $# -gt 0 ]; do
	case $1 in
	-large) large=1 ;;
	-trails) trails=$(mkdir -p "$2" && cd "$2" && pwd); shift ;;
	*) echo "usage: $0 [-large] [-trails dir]" >&2; exit 2 ;;
	esac
	shift
done

command -v spin >/dev/null || { echo "check.sh: spin is not installed (Debian package spin)" >&2; exit 1; }
CC=${CC:-cc}

# The scenarios (scenarios.pml), by number and name.
declare -A name=([1]=gupfast [2]=reuse [3]=getexit [4]=drop [5]=mprotect [9]=wide)
base=(1 2 3 4 5)

# Each mutant removes one guard; the scenario listed first is the one
# expected to kill it, the others are tried if it does not.
mutants=(
	"NO_PTE_SAME 2"		# wp_page_copy installs without the pte_same recheck
	"NO_EXCL_RECHECK 2"	# ... without the "became exclusive meanwhile" recheck
	"NO_GUPFAST_SEQ 1"	# GUP-fast ignores wpSeq (the begin check and the recheck)
	"NO_FORK_DRAIN 1"	# Fork does not wait for lockless sections
	"NO_FORK_COPY_PINNED 1"	# Fork shares the exclusive pages of pinned folios
	"NO_REUSE_REFCOUNT 3"	# the reuse test ignores references (CVE-2020-29374)
	"NO_WRPROTECT_LEFT 4"	# a dropped shared leaf is left writable
	"CLOSE_NO_WRPROTECT 4"	# issue 11 (a): Close leaves a referenced leaf writable
	"PIN_AFTER_RECHECK 1"	# issue 11 (b): the pincount comes after the recheck
)
# A guard the model shows redundant: removing it alone must verify.
redundant=(
	"NO_GUPFAST_RECHECK 1"	# GUP-fast's Unchanged: Fork's drain already excludes it
)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0

# run ID SCENARIO DEFINES... : verify in a scratch copy; sets r_err,
# r_states, r_pan, r_cc, r_what, r_dir.
run() {
	local id=$1 sc=$2; shift 2
	r_dir=$work/$id.$sc
	mkdir -p "$r_dir"
	cp "$here"/*.pml "$r_dir"/
	(
		cd "$r_dir"
		spin -a -DSCENARIO="$sc" "$@" anonfolio.pml >spin.out 2>&1 || { cat spin.out >&2; exit 1; }
		local t0=$SECONDS
		$CC -O0 -DSAFETY -w -o pan pan.c
		echo $((SECONDS - t0)) >cc.time
		local w=24
		[ "$sc" = 9 ] && w=27
		local p0 p1
		p0=$(date +%s%N)
		./pan -n -m1000000 -w$w >pan.out 2>&1 || true
		p1=$(date +%s%N)
		awk -v d=$((p1 - p0)) 'BEGIN { printf "%.2f\n", d / 1e9 }' >pan.time
	)
	r_err=$(grep -oE 'errors: [0-9]+' "$r_dir/pan.out" | grep -oE '[0-9]+' || echo '?')
	r_states=$(grep -oE '[0-9]+ states, stored' "$r_dir/pan.out" | grep -oE '^[0-9]+' || echo '?')
	r_pan=$(cat "$r_dir/pan.time")
	r_cc=$(cat "$r_dir/cc.time")
	r_what=$(grep -E 'violated|invalid end state' "$r_dir/pan.out" | grep -v '^\s' | head -1 | sed 's/ (at depth.*//' || true)
}

line() { printf '%-8s %-22s %-10s %-10s %10s states  %6ss  (cc %ss)  %s\n' "$@"; }

for sc in "${base[@]}"; do
	run base "$sc"
	if [ "$r_err" = 0 ]; then v=ok; else v=FAILED; failed=1; fi
	line base "${name[$sc]}" "$v" "" "$r_states" "$r_pan" "$r_cc" "$r_what"
done

for m in "${mutants[@]}"; do
	set -- $m
	mut=$1; first=$2
	killed=0
	for sc in "$first" $(printf '%s\n' "${base[@]}" | grep -vx "$first"); do
		run "$mut" "$sc" -D"$mut"
		if [ "$r_err" != 0 ]; then
			killed=1
			line mutant "$mut" killed "${name[$sc]}" "$r_states" "$r_pan" "$r_cc" "$r_what"
			if [ -n "$trails" ]; then
				cp "$r_dir/anonfolio.pml.trail" "$trails/$mut.trail"
				cp "$r_dir"/*.pml "$trails/" 2>/dev/null || true
			fi
			break
		fi
	done
	if [ $killed = 0 ]; then
		failed=1
		line mutant "$mut" SURVIVED "" "" "" "" "no scenario finds a counterexample"
	fi
done

for m in "${redundant[@]}"; do
	set -- $m
	run "$1" "$2" -D"$1"
	if [ "$r_err" = 0 ]; then v=redundant; else v=UNEXPECTED; failed=1; fi
	line mutant "$1" "$v" "${name[$2]}" "$r_states" "$r_pan" "$r_cc" "verifies: the guard is implied by another"
done

if [ $large = 1 ]; then
	run large 9
	if [ "$r_err" = 0 ]; then v=ok; else v=FAILED; failed=1; fi
	line large "${name[9]}" "$v" "" "$r_states" "$r_pan" "$r_cc" "$r_what"
fi

if [ $failed = 1 ]; then
	echo "model check FAILED"
	exit 1
fi
echo "model check passed"
