package bench

import (
	"slices"
	"time"
)

// A Result is the metrics of one (workload, policy) pair. Ratios are ours
// over the baseline measured in the same run; 0 means the baseline was not
// available (or the figure does not apply).
type Result struct {
	Workload string `json:"workload"`
	Policy   string `json:"policy"`
	Kernel   bool   `json:"kernel"`             // a kernel row: plain kernel memory, no anonfolio
	Orders   string `json:"orders,omitempty"`   // the order set, "{0,4,9}"
	CopyUnit string `json:"cow_unit,omitempty"` // "page" or "folio"
	Reps     int    `json:"reps"`               // repetitions measured; the median is reported
	// RepWallNs is the wall time of every repetition, in the order they
	// ran; WallNs is their median. Spread is (slowest - fastest) / WallNs,
	// the run-to-run noise of this pair (0 with one repetition).
	RepWallNs []int64 `json:"rep_wall_ns,omitempty"`
	Spread    float64 `json:"spread"`
	Err       string  `json:"error,omitempty"` // why the pair could not run

	WallNs    int64   `json:"wall_ns"`
	Ops       int64   `json:"ops"`
	OpsPerSec float64 `json:"ops_per_s"`

	// Faults: FaultAlloc[order] write faults were served by a new folio of
	// that order (Faults is their sum) and FaultFallback[order] tried it
	// and fell back. ArenaAlloc is what the arena allocated per order
	// meanwhile (faults and COW copies). Kernel rows have KernelFaults, the
	// process's minor faults during the run, instead.
	FaultAlloc    []uint64 `json:"fault_alloc,omitempty"`
	Faults        uint64   `json:"faults"`
	FaultFallback []uint64 `json:"fault_fallback,omitempty"`
	Fallbacks     uint64   `json:"fallbacks"`
	ArenaAlloc    []uint64 `json:"arena_alloc,omitempty"`
	KernelFaults  int64    `json:"kernel_faults,omitempty"`
	// FaultPhaseNs is the time of the phases that fault memory in (the
	// fills and first touches), FaultBytes the memory they fault in.
	FaultPhaseNs int64   `json:"fault_phase_ns"`
	FaultBytes   int64   `json:"fault_bytes"`
	NsPerFault   float64 `json:"ns_per_fault"` // FaultPhaseNs / Faults
	NsPer4KiB    float64 `json:"ns_per_4kib"`  // FaultPhaseNs per 4 KiB faulted in

	Forks        int     `json:"forks"`
	ForkP50Ns    float64 `json:"fork_p50_ns"`
	ForkP99Ns    float64 `json:"fork_p99_ns"`
	WPCopy       uint64  `json:"wp_copy"`
	WPReuse      uint64  `json:"wp_reuse"`
	CopyBytes    uint64  `json:"copy_bytes"`
	ForkCopies   uint64  `json:"fork_copies"`
	CowNsPerPage float64 `json:"cow_ns_per_page"` // fork churn: the writes' time per page written

	PageSize      int     `json:"page_size"`
	ResidentPages int64   `json:"resident_pages"` // the space's Stats().Resident (kernel rows: mincore)
	TouchedPages  int64   `json:"touched_pages"`  // pages the workload wrote
	BloatPages    int64   `json:"bloat_pages"`    // resident minus touched
	Bloat         float64 `json:"bloat"`          // BloatPages / TouchedPages

	Digest uint64 `json:"digest,string"` // of the ops and what was read back: equal for equal seeds

	// Options is the cow.Options literal of the policy on this run's
	// arena, ready to paste ("" for kernel rows).
	Options string `json:"options,omitempty"`

	TimeVsKernel  float64 `json:"time_vs_kernel,omitempty"`  // WallNs / the kernel-4KiB row's
	FaultVsKernel float64 `json:"fault_vs_kernel,omitempty"` // NsPer4KiB / the kernel's first-touch fault
	FaultVsMemclr float64 `json:"fault_vs_memclr,omitempty"` // NsPer4KiB / memclr in blocks of the largest folio
	ForkVsKernel  float64 `json:"fork_vs_kernel,omitempty"`  // ForkP50Ns / the kernel's fork()
	CowVsKernel   float64 `json:"cow_vs_kernel,omitempty"`   // CowNsPerPage / the kernel's COW fault
	CowVsMemmove  float64 `json:"cow_vs_memmove,omitempty"`  // CowNsPerPage / memmove of 4 KiB
}

// Wall returns the wall time.
func (r Result) Wall() time.Duration { return time.Duration(r.WallNs) }

// spread returns the run-to-run spread of r, (slowest - fastest
// repetition) / median, and whether it was measured (two repetitions or
// more).
func (r Result) spread() (float64, bool) {
	if len(r.RepWallNs) < 2 {
		return 0, false
	}
	med := r.WallNs
	if med <= 0 {
		s := slices.Clone(r.RepWallNs)
		slices.Sort(s)
		med = s[(len(s)-1)/2]
	}
	if med <= 0 {
		return 0, false
	}
	return float64(slices.Max(r.RepWallNs)-slices.Min(r.RepWallNs)) / float64(med), true
}

// ForkPoint is the Fork latency of a policy (or of the kernel's fork())
// with Resident bytes resident.
type ForkPoint struct {
	Policy   string  `json:"policy"`
	Resident int64   `json:"resident_bytes"`
	P50Ns    float64 `json:"p50_ns"`
	Err      string  `json:"error,omitempty"`
}

// percentile returns the p-th percentile (nearest rank) of d.
func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := (p*len(s) + 99) / 100 // ceil(p/100 * n)
	return s[max(rank, 1)-1]
}

// finish derives the per-unit figures from the raw counts.
func (r *Result) finish(w *run) {
	r.Ops = w.ops
	if r.WallNs > 0 {
		r.OpsPerSec = float64(r.Ops) / (float64(r.WallNs) / 1e9)
	}
	r.FaultPhaseNs = w.faultTime.Nanoseconds()
	r.FaultBytes = w.faultMem
	if r.Faults > 0 {
		r.NsPerFault = float64(r.FaultPhaseNs) / float64(r.Faults)
	}
	if r.FaultBytes > 0 {
		r.NsPer4KiB = float64(r.FaultPhaseNs) / (float64(r.FaultBytes) / 4096)
	}
	r.Forks = len(w.forkLat)
	r.ForkP50Ns = float64(percentile(w.forkLat, 50).Nanoseconds())
	r.ForkP99Ns = float64(percentile(w.forkLat, 99).Nanoseconds())
	if w.cowPages > 0 {
		r.CowNsPerPage = float64(w.cowTime.Nanoseconds()) / float64(w.cowPages)
	}
	r.PageSize = w.page
	r.TouchedPages = w.touchedPages()
	r.BloatPages = r.ResidentPages - r.TouchedPages
	if r.TouchedPages > 0 {
		r.Bloat = float64(r.BloatPages) / float64(r.TouchedPages)
	}
}

// ratios fills in the ratios of r to the baselines; kernel4K is the
// kernel-4KiB row of the same workload (nil if none).
func (r *Result) ratios(b *Baselines, kernel4K *Result, largestFolio int) {
	if kernel4K != nil && kernel4K.Err == "" && r.Err == "" && !(r.Kernel && r.Policy == KernelSmall) {
		r.TimeVsKernel = float64(r.WallNs) / float64(kernel4K.WallNs)
	}
	r.FaultVsKernel = b.KernelFault.ratio(r.NsPer4KiB)
	r.FaultVsMemclr = b.memclrFor(largestFolio).ratio(r.NsPer4KiB)
	r.ForkVsKernel = b.KernelFork.ratio(r.ForkP50Ns)
	r.CowVsKernel = b.KernelCOW.ratio(r.CowNsPerPage)
	r.CowVsMemmove = b.memmoveFor(4096).ratio(r.CowNsPerPage)
}
