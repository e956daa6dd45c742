package bench

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteJSON writes the report as indented JSON.
func (rep *Report) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(rep)
}

// ReadJSON decodes a report written by WriteJSON.
func ReadJSON(r io.Reader) (*Report, error) {
	var rep Report
	if err := json.NewDecoder(r).Decode(&rep); err != nil {
		return nil, err
	}
	return &rep, nil
}

// csvHeader is the fixed part of a CSV row; the per-order fault columns
// (fault_alloc_oN, fault_fallback_oN) follow it.
var csvHeader = []string{
	"workload", "policy", "kernel", "orders", "cow_unit", "reps", "error",
	"wall_ns", "time_vs_kernel", "ops", "ops_per_s",
	"faults", "fallbacks", "kernel_faults", "ns_per_fault", "ns_per_4kib", "fault_vs_kernel", "fault_vs_memclr",
	"forks", "fork_p50_ns", "fork_p99_ns", "fork_vs_kernel",
	"wp_copy", "wp_reuse", "copy_bytes", "fork_copies", "cow_ns_per_page", "cow_vs_kernel", "cow_vs_memmove",
	"page_size", "resident_pages", "touched_pages", "bloat_pages", "bloat", "digest",
	"spread", "options",
}

// WriteCSV writes one row per result, with a header.
func (rep *Report) WriteCSV(w io.Writer) error {
	orders := 0
	for _, r := range rep.Results {
		orders = max(orders, len(r.FaultAlloc))
	}
	cw := csv.NewWriter(w)
	h := append([]string(nil), csvHeader...)
	for o := range orders {
		h = append(h, fmt.Sprintf("fault_alloc_o%d", o))
	}
	for o := range orders {
		h = append(h, fmt.Sprintf("fault_fallback_o%d", o))
	}
	cw.Write(h)
	for _, r := range rep.Results {
		row := []string{
			r.Workload, r.Policy, strconv.FormatBool(r.Kernel), r.Orders, r.CopyUnit, itoa(r.Reps), r.Err,
			i64(r.WallNs), ftoa(r.TimeVsKernel), i64(r.Ops), ftoa(r.OpsPerSec),
			u64(r.Faults), u64(r.Fallbacks), i64(r.KernelFaults), ftoa(r.NsPerFault), ftoa(r.NsPer4KiB), ftoa(r.FaultVsKernel), ftoa(r.FaultVsMemclr),
			itoa(r.Forks), ftoa(r.ForkP50Ns), ftoa(r.ForkP99Ns), ftoa(r.ForkVsKernel),
			u64(r.WPCopy), u64(r.WPReuse), u64(r.CopyBytes), u64(r.ForkCopies), ftoa(r.CowNsPerPage), ftoa(r.CowVsKernel), ftoa(r.CowVsMemmove),
			itoa(r.PageSize), i64(r.ResidentPages), i64(r.TouchedPages), i64(r.BloatPages), ftoa(r.Bloat), u64(r.Digest),
			ftoa(r.Spread), r.Options,
		}
		for o := range orders {
			row = append(row, u64(at(r.FaultAlloc, o)))
		}
		for o := range orders {
			row = append(row, u64(at(r.FaultFallback, o)))
		}
		cw.Write(row)
	}
	cw.Flush()
	return cw.Error()
}

func at(s []uint64, i int) uint64 {
	if i < len(s) {
		return s[i]
	}
	return 0
}

func itoa(n int) string     { return strconv.Itoa(n) }
func i64(n int64) string    { return strconv.FormatInt(n, 10) }
func u64(n uint64) string   { return strconv.FormatUint(n, 10) }
func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', 6, 64) }

// WriteTable writes every metric of the report: the platform, the
// baselines, one aligned row per (workload, policy) with each figure's
// ratio to its baseline (×k: to the kernel, ×clr: to memclr), the Fork
// latency by resident size, and the recommendations with their reasons.
// WriteSummary is the short answer.
func (rep *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "%s\n\n", rep.Platform)
	c := rep.Config
	fmt.Fprintf(w, "size %s, seed %d, sparse stride %s, fork churn %d rounds writing %g%% of pages, pin range %s, bloat threshold %s\n\n",
		sizeString(c.Size), c.Seed, sizeString(int64(c.SparseStride)), c.ForkRounds, c.WritePercent, sizeString(int64(c.PinRange)), percent(c.Bloat))

	b := &rep.Baselines
	fmt.Fprintln(w, "baselines (measured in this run):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i := range b.Memclr {
		fmt.Fprintf(tw, "  memclr %s blocks\t%.0f ns/4KiB\t%.1f GB/s\n", sizeString(int64(b.Memclr[i].Block)), b.Memclr[i].NsPer4KiB, b.Memclr[i].GBps)
	}
	for i := range b.Memmove {
		fmt.Fprintf(tw, "  memmove %s blocks\t%.0f ns/4KiB\t%.1f GB/s\n", sizeString(int64(b.Memmove[i].Block)), b.Memmove[i].NsPer4KiB, b.Memmove[i].GBps)
	}
	for _, x := range []struct {
		name string
		b    Baseline
	}{
		{"kernel first-touch fault, MADV_NOHUGEPAGE", b.KernelFault},
		{"kernel first-touch fault, MADV_HUGEPAGE", b.KernelFaultTHP},
		{"kernel fork(), " + sizeString(c.Size) + " in 4 KiB pages", b.KernelFork},
		{"kernel fork(), " + sizeString(c.Size) + " in THP", b.KernelForkTHP},
		{"kernel COW fault", b.KernelCOW},
	} {
		fmt.Fprintf(tw, "  %s\t%s\t\n", x.name, baselineString(x.b))
	}
	tw.Flush()

	fmt.Fprintln(w, "\nresults (×k: ratio to the kernel's figure; ×clr: to memclr in blocks of the largest folio; ×mv: to memmove of 4 KiB):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tpolicy\ttime\truns\tspread\t×k\tops/s\tfaults by order\tfallbk\tns/fault\tns/4KiB\t×k\t×clr\tfork p50\tp99\t×k\tWPCopy\tcopied\tcow ns/pg\t×k\t×mv\tresident\ttouched\tbloat\t")
	for _, r := range rep.Results {
		if r.Err != "" {
			fmt.Fprintf(tw, "%s\t%s\tunavailable: %s\t\n", r.Workload, r.Policy, r.Err)
			continue
		}
		faults := faultsByOrder(r.FaultAlloc)
		if r.Kernel {
			faults = fmt.Sprintf("minflt %d", r.KernelFaults)
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t\n",
			r.Workload, r.Policy, fmtDur(r.WallNs), r.Reps, spreadString(r), ratioString(r.TimeVsKernel), si(r.OpsPerSec),
			faults, r.Fallbacks, num(r.NsPerFault), num(r.NsPer4KiB), ratioString(r.FaultVsKernel), ratioString(r.FaultVsMemclr),
			durOrDash(r.ForkP50Ns), durOrDash(r.ForkP99Ns), ratioString(r.ForkVsKernel),
			r.WPCopy, sizeOrDash(r.CopyBytes), num(r.CowNsPerPage), ratioString(r.CowVsKernel), ratioString(r.CowVsMemmove),
			r.ResidentPages, r.TouchedPages, percent(r.Bloat))
	}
	tw.Flush()

	if len(rep.ForkScale) > 0 {
		fmt.Fprintln(w, "\nFork latency (median) by resident size:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		sizes, pols := forkScaleAxes(rep.ForkScale)
		fmt.Fprint(tw, "resident\t")
		for _, p := range pols {
			fmt.Fprintf(tw, "%s\t", p)
		}
		fmt.Fprintln(tw)
		for _, s := range sizes {
			fmt.Fprintf(tw, "%s\t", sizeString(s))
			for _, p := range pols {
				fmt.Fprintf(tw, "%s\t", forkAt(rep.ForkScale, p, s))
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
	}

	fmt.Fprintf(w, "\nrecommendations (%s):\n", TieRule)
	for _, r := range rep.Recommendations {
		fmt.Fprintf(w, "  %-10s %-16s %s\n", r.Workload, r.Policy, r.Why)
		if r.Options != "" {
			fmt.Fprintf(w, "  %-10s %-16s use %s\n", "", "", r.Options)
		}
	}
	fmt.Fprintf(w, "\nthe run took %v\n", time.Duration(rep.ElapsedNs).Round(time.Millisecond))
	return nil
}

// spreadString is a result's run-to-run spread, "-" if it ran once.
func spreadString(r Result) string {
	if s, ok := r.spread(); ok {
		return percent(s)
	}
	return "-"
}

func baselineString(b Baseline) string {
	if !b.OK() {
		return "unavailable: " + b.Err
	}
	if b.Unit == "ns" {
		return time.Duration(b.Value).Round(time.Microsecond).String()
	}
	return fmt.Sprintf("%.0f %s", b.Value, b.Unit)
}

func faultsByOrder(f []uint64) string {
	var parts []string
	for o := len(f) - 1; o >= 0; o-- {
		if f[o] > 0 {
			parts = append(parts, fmt.Sprintf("o%d:%d", o, f[o]))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func ratioString(r float64) string {
	if r == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", r)
}

func num(f float64) string {
	if f == 0 {
		return "-"
	}
	return strconv.FormatFloat(f, 'f', 0, 64)
}

// si formats a rate with a k/M/G suffix.
func si(f float64) string {
	switch {
	case f >= 1e9:
		return fmt.Sprintf("%.2fG", f/1e9)
	case f >= 1e6:
		return fmt.Sprintf("%.2fM", f/1e6)
	case f >= 1e3:
		return fmt.Sprintf("%.1fk", f/1e3)
	}
	return fmt.Sprintf("%.0f", f)
}

func durOrDash(ns float64) string {
	if ns == 0 {
		return "-"
	}
	return fmtDur(int64(ns)).String()
}

func sizeOrDash(n uint64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
}

// forkScaleAxes returns the resident sizes and the policies of pts, in the
// order they first appear.
func forkScaleAxes(pts []ForkPoint) (sizes []int64, pols []string) {
	seenS, seenP := map[int64]bool{}, map[string]bool{}
	for _, p := range pts {
		if !seenS[p.Resident] {
			seenS[p.Resident] = true
			sizes = append(sizes, p.Resident)
		}
		if !seenP[p.Policy] {
			seenP[p.Policy] = true
			pols = append(pols, p.Policy)
		}
	}
	return sizes, pols
}

func forkAt(pts []ForkPoint, pol string, size int64) string {
	for _, p := range pts {
		if p.Policy == pol && p.Resident == size {
			if p.Err != "" {
				return "unavailable"
			}
			return durOrDash(p.P50Ns)
		}
	}
	return "-"
}
