package bench

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// A Recommendation is the policy to use for a workload, the runner-up, and
// how the choice was made.
type Recommendation struct {
	Workload string `json:"workload"`
	Policy   string `json:"policy"` // "" if no policy ran
	// Options is the cow.Options literal of Policy, ready to paste (""
	// if the results did not record it).
	Options string  `json:"options,omitempty"`
	WallNs  int64   `json:"wall_ns"` // Policy's median time
	Bloat   float64 `json:"bloat"`   // Policy's bloat

	RunnerUp       string  `json:"runner_up,omitempty"` // the next in the ranking
	RunnerUpWallNs int64   `json:"runner_up_wall_ns,omitempty"`
	RunnerUpBloat  float64 `json:"runner_up_bloat,omitempty"`

	// Noise is the run-to-run spread that decides ties: the median, over
	// the workload's qualifying policies, of their spread ((slowest -
	// fastest repetition) / median), or the fastest policy's own spread if
	// that is larger (an erratic leader's lead is in doubt). NoiseMeasured
	// is false when no policy ran twice: then only equal times tie.
	Noise         float64 `json:"noise"`
	NoiseMeasured bool    `json:"noise_measured"`
	// Tied lists the policies whose time is within Noise of the fastest,
	// in the order of the tie-break (Policy first); nil if the fastest
	// stands alone.
	Tied []string `json:"tied,omitempty"`
	// Decided says in a few words why Policy won: by time beyond the
	// noise, or which tie-break separated it from the tied policies.
	Decided string `json:"decided"`
	// Why is the whole reasoning, in a sentence or three.
	Why      string   `json:"why"`
	Excluded []string `json:"excluded,omitempty"` // faster policies whose bloat is over the threshold
}

// RunnerUpDelta is how much slower the runner-up is than the policy
// chosen, as a fraction (negative: faster, yet tied and behind on the
// tie-break); 0 if there is no runner-up.
func (r Recommendation) RunnerUpDelta() float64 {
	if r.RunnerUp == "" || r.WallNs <= 0 {
		return 0
	}
	return float64(r.RunnerUpWallNs)/float64(r.WallNs) - 1
}

// DefaultPolicy is the policy of the zero cow.Options: the default orders
// with page COW. A tie-break prefers it: nothing to configure.
const DefaultPolicy = "default"

// TieRule says how Recommend ranks, for a report's reader.
const TieRule = "a policy qualifies if its bloat is within the threshold; " +
	"qualifying policies whose median time is within the run-to-run spread of the fastest tie " +
	"(the median spread of the workload's policies' rounds, or the fastest's own if larger); " +
	"among tied policies the least bloat (to the whole percent) wins, then the fewest bytes copied by COW, " +
	"then the default set (cow.Options{}), then the fewest faults, then the smaller folios (the order listed)"

// Recommend picks, for each workload in results (in the order they first
// appear), the policy of anonfolio to use. A policy qualifies if its bloat
// (resident pages beyond those touched, as a fraction of those touched) is
// at most threshold; kernel rows and failed pairs are not candidates.
//
// Times that differ by less than the machine's noise are not ranked: the
// noise is the workload's run-to-run spread, measured from the
// repetitions of each pair (Result.RepWallNs): the median spread of the
// qualifying policies (one wild pair does not make everything tie), or the
// fastest one's own spread if larger (a lead taken by an erratic policy is
// no lead). Every qualifying policy within the noise of the fastest ties
// with it. A tie
// is broken by what is not noise (TieRule): less bloat (to the whole
// percent: a few pages are no reason), fewer bytes copied, the default
// set, fewer faults, the order listed. If no
// policy qualifies it picks the one with the least bloat. It is a pure
// function of its arguments.
func Recommend(results []Result, threshold float64) []Recommendation {
	var order []string
	by := map[string][]Result{}
	for _, r := range results {
		if r.Kernel || r.Err != "" {
			continue
		}
		if _, ok := by[r.Workload]; !ok {
			order = append(order, r.Workload)
		}
		by[r.Workload] = append(by[r.Workload], r)
	}
	var recs []Recommendation
	for _, w := range order {
		recs = append(recs, recommendOne(w, by[w], threshold))
	}
	return recs
}

func byTime(a, b Result) int { return cmp.Compare(a.WallNs, b.WallNs) }

// tieBreak orders tied results by what is not noise (TieRule). Its last
// resort is the listed order, which the stable sort keeps.
func tieBreak(a, b Result) int {
	isDefault := func(r Result) int {
		if r.Policy == DefaultPolicy {
			return 0
		}
		return 1
	}
	return cmp.Or(cmp.Compare(bloatPercent(a), bloatPercent(b)), cmp.Compare(a.CopyBytes, b.CopyBytes),
		cmp.Compare(isDefault(a), isDefault(b)), cmp.Compare(a.Faults, b.Faults))
}

// bloatPercent is r's bloat to the whole percent: the tie-break's measure
// of memory, blind to a few pages.
func bloatPercent(r Result) float64 { return math.Round(r.Bloat * 100) }

// whyTieBroken names the first criterion of tieBreak that puts a before b.
func whyTieBroken(a, b Result) string {
	switch {
	case bloatPercent(a) != bloatPercent(b):
		return "least bloat"
	case a.CopyBytes != b.CopyBytes:
		return "fewest bytes copied"
	case a.Policy == DefaultPolicy:
		return "the default set (nothing to configure)"
	case a.Faults != b.Faults:
		return "fewest faults"
	}
	return "listed first (equal bloat, copies and faults)"
}

// noise is the median spread of the results that ran more than once.
func noise(rs []Result) (float64, bool) {
	var s []float64
	for _, r := range rs {
		if x, ok := r.spread(); ok {
			s = append(s, x)
		}
	}
	if len(s) == 0 {
		return 0, false
	}
	slices.Sort(s)
	n := len(s)
	return (s[(n-1)/2] + s[n/2]) / 2, true
}

func recommendOne(workload string, cands []Result, threshold float64) Recommendation {
	rec := Recommendation{Workload: workload}
	var ok []Result // the qualifying, in the order listed
	for _, r := range cands {
		if r.Bloat <= threshold {
			ok = append(ok, r)
		}
	}
	if len(ok) == 0 {
		least := slices.MinFunc(cands, func(a, b Result) int {
			return cmp.Or(cmp.Compare(a.Bloat, b.Bloat), byTime(a, b))
		})
		rec.set(least)
		rec.Decided = "the least bloat: none within the threshold"
		rec.Why = fmt.Sprintf("no policy kept bloat within %s; %s has the least (%s, %v)",
			percent(threshold), least.Policy, percent(least.Bloat), fmtDur(least.WallNs))
		return rec
	}

	fastest := slices.MinFunc(ok, byTime) // the first listed of equal times
	rec.Noise, rec.NoiseMeasured = noise(ok)
	if own, ok := fastest.spread(); ok {
		rec.Noise = max(rec.Noise, own)
	}
	limit := float64(fastest.WallNs) * (1 + rec.Noise)
	var tied, rest []Result
	for _, r := range ok {
		if float64(r.WallNs) <= limit {
			tied = append(tied, r)
		} else {
			rest = append(rest, r)
		}
	}
	slices.SortStableFunc(tied, tieBreak)
	slices.SortStableFunc(rest, byTime)
	ranked := slices.Concat(tied, rest)
	best := ranked[0]
	rec.set(best)
	if len(ranked) > 1 {
		ru := ranked[1]
		rec.RunnerUp, rec.RunnerUpWallNs, rec.RunnerUpBloat = ru.Policy, ru.WallNs, ru.Bloat
	}
	if len(tied) > 1 {
		for _, r := range tied {
			rec.Tied = append(rec.Tied, r.Policy)
		}
	}

	spread := "the run-to-run spread was not measured (no policy has the times of two runs)"
	if rec.NoiseMeasured {
		spread = fmt.Sprintf("the run-to-run spread is %s", percent(rec.Noise))
	}
	var why strings.Builder
	switch {
	case len(ok) == 1:
		rec.Decided = "the only policy within the bloat threshold"
		fmt.Fprintf(&why, "the only policy with bloat within %s: %v, bloat %s", percent(threshold), fmtDur(best.WallNs), percent(best.Bloat))
	case len(tied) > 1:
		rec.Decided = fmt.Sprintf("tie of %d within %s, broken by: %s", len(tied), percent(rec.Noise), whyTieBroken(best, tied[1]))
		fmt.Fprintf(&why, "%d of %d policies with bloat within %s are within %s of the fastest (%s, %v), %s: a tie; %s wins the tie-break, %s (%v, bloat %s)",
			len(tied), len(ok), percent(threshold), percent(rec.Noise), fastest.Policy, fmtDur(fastest.WallNs), spread,
			best.Policy, whyTieBroken(best, tied[1]), fmtDur(best.WallNs), percent(best.Bloat))
	case rec.NoiseMeasured:
		rec.Decided = fmt.Sprintf("faster by %s, beyond the %s spread", percent(rec.RunnerUpDelta()), percent(rec.Noise))
		fmt.Fprintf(&why, "fastest of %d policies with bloat within %s: %v, bloat %s; %s",
			len(ok), percent(threshold), fmtDur(best.WallNs), percent(best.Bloat), spread)
	default:
		rec.Decided = "the fastest; the spread was not measured, so a small lead may be noise"
		fmt.Fprintf(&why, "fastest of %d policies with bloat within %s: %v, bloat %s; %s, so a small lead may be noise",
			len(ok), percent(threshold), fmtDur(best.WallNs), percent(best.Bloat), spread)
	}
	if rec.RunnerUp != "" {
		d := rec.RunnerUpDelta()
		word := "slower"
		if d < 0 {
			word, d = "faster", -d
		}
		fmt.Fprintf(&why, "; runner-up %s is %s %s (%v, bloat %s)", rec.RunnerUp, percent(d), word, fmtDur(rec.RunnerUpWallNs), percent(rec.RunnerUpBloat))
	}
	for _, r := range cands {
		if r.Bloat > threshold && r.WallNs < best.WallNs {
			rec.Excluded = append(rec.Excluded, r.Policy)
			fmt.Fprintf(&why, "; %s was faster (%v) but bloats %s", r.Policy, fmtDur(r.WallNs), percent(r.Bloat))
		}
	}
	rec.Why = why.String()
	return rec
}

// set makes r the recommended policy.
func (rec *Recommendation) set(r Result) {
	rec.Policy, rec.Options, rec.WallNs, rec.Bloat = r.Policy, r.Options, r.WallNs, r.Bloat
}

// percent formats a fraction as a percentage, with a decimal below 10 %.
func percent(f float64) string {
	if v := f * 100; v != 0 && v > -10 && v < 10 {
		return fmt.Sprintf("%.1f%%", v)
	}
	return fmt.Sprintf("%.0f%%", f*100)
}

func fmtDur(ns int64) time.Duration {
	d := time.Duration(ns)
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond / 10)
}
