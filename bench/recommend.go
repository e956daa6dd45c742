package bench

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// A Recommendation is the policy to use for a workload: the fastest whose
// bloat stays under the threshold, the runner-up, and why.
type Recommendation struct {
	Workload string   `json:"workload"`
	Policy   string   `json:"policy"`              // "" if no policy ran
	RunnerUp string   `json:"runner_up,omitempty"` // the next fastest that qualifies
	Why      string   `json:"why"`
	Excluded []string `json:"excluded,omitempty"` // faster policies whose bloat is over the threshold
}

// tieMargin is how close two times are for the recommendation to call
// them a tie on a noisy machine.
const tieMargin = 0.05

// Recommend picks, for each workload in results (in the order they first
// appear), the policy of anonfolio with the lowest wall time whose bloat
// (resident pages beyond those touched, as a fraction of those touched) is
// at most threshold. Kernel rows and failed pairs are not candidates. If no
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

func recommendOne(workload string, cands []Result, threshold float64) Recommendation {
	rec := Recommendation{Workload: workload}
	byTime := func(a, b Result) int {
		return cmp.Or(cmp.Compare(a.WallNs, b.WallNs), cmp.Compare(a.ResidentPages, b.ResidentPages), strings.Compare(a.Policy, b.Policy))
	}
	var ok []Result
	for _, r := range cands {
		if r.Bloat <= threshold {
			ok = append(ok, r)
		}
	}
	if len(ok) == 0 {
		least := slices.MinFunc(cands, func(a, b Result) int {
			return cmp.Or(cmp.Compare(a.Bloat, b.Bloat), byTime(a, b))
		})
		rec.Policy = least.Policy
		rec.Why = fmt.Sprintf("no policy kept bloat within %s; %s has the least (%s, %v)",
			percent(threshold), least.Policy, percent(least.Bloat), fmtDur(least.WallNs))
		return rec
	}
	slices.SortStableFunc(ok, byTime)
	best := ok[0]
	rec.Policy = best.Policy
	var why strings.Builder
	if len(ok) == 1 {
		fmt.Fprintf(&why, "the only policy with bloat within %s: %v, bloat %s",
			percent(threshold), fmtDur(best.WallNs), percent(best.Bloat))
	} else {
		fmt.Fprintf(&why, "fastest of %d policies with bloat within %s: %v, bloat %s",
			len(ok), percent(threshold), fmtDur(best.WallNs), percent(best.Bloat))
	}
	if len(ok) > 1 {
		ru := ok[1]
		rec.RunnerUp = ru.Policy
		slower := float64(ru.WallNs)/float64(best.WallNs) - 1
		fmt.Fprintf(&why, "; runner-up %s is %s slower (%v, bloat %s)", ru.Policy, percent(slower), fmtDur(ru.WallNs), percent(ru.Bloat))
		if slower <= tieMargin {
			fmt.Fprintf(&why, ", a tie within this machine's noise")
			if ru.ResidentPages < best.ResidentPages {
				fmt.Fprintf(&why, ": prefer %s if memory matters more (%d fewer resident pages)", ru.Policy, best.ResidentPages-ru.ResidentPages)
			}
		}
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

func percent(f float64) string { return fmt.Sprintf("%.0f%%", f*100) }

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
