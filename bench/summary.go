package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteSummary writes the answer for a person in a few lines: per
// workload, the policy to use with its time and bloat, the runner-up and
// how much slower it is, and how the choice was made (a tie within the
// run-to-run spread is said to be one); then the cow.Options literal of
// each recommendation, ready to paste, and the rule that ranks. WriteTable
// has every metric.
func (rep *Report) WriteSummary(w io.Writer) error {
	c := rep.Config
	p := rep.Platform
	fmt.Fprintf(w, "which folio order: %s per workload, seed %d, bloat threshold %s; %s/%s, %s pages, %d cores\n\n",
		sizeString(c.Size), c.Seed, percent(c.Bloat), p.GOOS, p.GOARCH, sizeString(int64(p.PageSize)), p.Cores)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "workload\tuse\ttime\tbloat\truns\trunner-up\tslower by\tdecided by")
	for _, r := range rep.Recommendations {
		if r.Policy == "" {
			continue
		}
		runnerUp, by := "-", "-"
		if r.RunnerUp != "" {
			runnerUp, by = r.RunnerUp, signedPercent(r.RunnerUpDelta())
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\t%s\t%s\n",
			r.Workload, r.Policy, fmtDur(r.WallNs), percent(r.Bloat), rep.runs(r.Workload), runnerUp, by, r.Decided)
	}
	tw.Flush()

	fmt.Fprintf(w, "\ncow.Options to use (orders of this run's geometry: %s):\n", p.Geometry)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rep.Recommendations {
		if r.Policy == "" {
			continue
		}
		lit := r.Options
		if lit == "" {
			lit = "(not recorded)"
		}
		orders := ""
		if res := rep.result(r.Workload, r.Policy); res != nil && res.Orders != "" {
			orders = "// orders " + res.Orders
			if res.CopyUnit == "folio" {
				orders += ", folio COW"
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", r.Workload, lit, orders)
	}
	tw.Flush()

	fmt.Fprintf(w, "\nhow: %s.\n", TieRule)
	if rep.ElapsedNs > 0 {
		fmt.Fprintf(w, "the run took %v\n", time.Duration(rep.ElapsedNs).Round(time.Millisecond))
	}
	return nil
}

// runs says how many repetitions the workload's policies had: "3" or "2-5".
func (rep *Report) runs(workload string) string {
	lo, hi := 0, 0
	for _, r := range rep.Results {
		if r.Workload != workload || r.Kernel || r.Err != "" {
			continue
		}
		if lo == 0 || r.Reps < lo {
			lo = r.Reps
		}
		hi = max(hi, r.Reps)
	}
	if lo == hi {
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

// result returns the result of (workload, policy), or nil.
func (rep *Report) result(workload, policy string) *Result {
	for i := range rep.Results {
		if r := &rep.Results[i]; r.Workload == workload && r.Policy == policy && !r.Kernel {
			return r
		}
	}
	return nil
}

// signedPercent is percent with a sign: "+12%", "-3.5%".
func signedPercent(f float64) string {
	s := percent(f)
	if !strings.HasPrefix(s, "-") {
		s = "+" + s
	}
	return s
}
