package bench

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/anonfolio/anonfolio/internal/kernel"
)

// Report is everything one run measured.
type Report struct {
	Platform        Platform         `json:"platform"`
	Config          Settings         `json:"config"`
	Baselines       Baselines        `json:"baselines"`
	Results         []Result         `json:"results"`
	ForkScale       []ForkPoint      `json:"fork_scale"`
	Recommendations []Recommendation `json:"recommendations"`
	ElapsedNs       int64            `json:"elapsed_ns"`
}

// Settings are the figures of a Config that a report needs to be read.
type Settings struct {
	Size         int64   `json:"size"`
	Seed         uint64  `json:"seed"`
	DurationNs   int64   `json:"duration_ns"`
	SparseStride int     `json:"sparse_stride"`
	WritePercent float64 `json:"write_percent"`
	ForkRounds   int     `json:"fork_rounds"`
	ScanPasses   int     `json:"scan_passes"`
	PinRange     int     `json:"pin_range"`
	Bloat        float64 `json:"bloat_threshold"`
}

// Platform is the machine the run was on.
type Platform struct {
	folio.Platform
	PageSize  int    `json:"page_size"` // the arena's base page size
	ContPTEs  int    `json:"cont_ptes"` // pages in one contpte block
	ContOrder int    `json:"cont_order"`
	PMDOrder  int    `json:"pmd_order"`
	Geometry  string `json:"geometry"`
	Race      bool   `json:"race"` // built with -race: the arena is on the Go heap
}

// String describes the platform in a few lines.
func (p Platform) String() string {
	s := p.Platform.String() + "\ngeometry: " + p.Geometry
	if p.Race {
		s += "\nrace detector on: every figure is slow"
	}
	return s
}

// arenaSlack is what the arena holds beyond twice the size: page tables
// live on the Go heap, so this is only for the allocator's caches.
const arenaSlack = 16 << 20

// Run runs the workloads of cfg under its policies and returns the report.
// Errors of a single pair (a kernel fork() that qemu-user cannot do) are
// recorded in its Result; an error returned means nothing was measured.
func Run(cfg Config) (*Report, error) {
	start := time.Now()
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	rep := &Report{Config: Settings{
		Size: cfg.Size, Seed: cfg.Seed, DurationNs: cfg.Duration.Nanoseconds(),
		SparseStride: cfg.SparseStride, WritePercent: cfg.WritePercent,
		ForkRounds: cfg.ForkRounds, ScanPasses: cfg.ScanPasses,
		PinRange: cfg.PinRange, Bloat: cfg.Bloat,
	}}
	ws := cfg.selected()
	g0, err := folio.NewGeometry(0, 0)
	if err != nil {
		return nil, err
	}
	total := 0
	for _, w := range ws {
		total += len(policies(g0, cfg.Policies, cfg.COW, w.Forks))
		if !cfg.NoKernel && w.Func == nil {
			total += 2
		}
	}
	done := 0
	pairDone := func(r Result) {
		done++
		what := fmt.Sprintf("%v, median of %d", fmtDur(r.WallNs), r.Reps)
		if r.Err != "" {
			what = "unavailable: " + r.Err
		}
		cfg.progress("[%d/%d] %-10s %-18s %s", done, total, r.Workload, r.Policy, what)
	}

	// The kernel's figures first, before our arena's mapping exists.
	rep.Baselines = measureBaselines(&cfg)
	if !cfg.NoKernel {
		for _, w := range ws {
			if w.Func != nil { // a custom workload needs a Space
				continue
			}
			rs, _ := rounds(&cfg, w.Name+" on kernel memory", 2, func(i int) (Result, error) {
				return kernelOnce(&cfg, w, i == 1), nil // a failure is in the result
			})
			for _, r := range rs {
				rep.Results = append(rep.Results, r)
				pairDone(r)
			}
		}
	}

	largest := cfg.Size
	for _, w := range ws {
		largest = max(largest, cfg.sizeOf(w))
	}
	a, err := folio.NewArena(folio.Config{Size: 2*largest + arenaSlack, Populate: true, RetainFree: -1})
	if err != nil {
		return nil, fmt.Errorf("bench: the arena: %w", err)
	}
	defer a.Close() // on the error paths; a no-op after the Close below
	g := a.Geometry()
	rep.Platform = Platform{
		Platform: folio.HostPlatform(), PageSize: g.PageSize, ContPTEs: g.ContPTEs,
		ContOrder: g.ContOrder, PMDOrder: g.PMDOrder, Geometry: g.String(), Race: a.Stats().Backing != "mmap",
	}
	for _, w := range ws {
		ps := policies(g, cfg.Policies, cfg.COW, w.Forks)
		rs, err := rounds(&cfg, w.Name, len(ps), func(i int) (Result, error) {
			r, err := runOnSpace(&cfg, a, w, ps[i], nil)
			if err != nil {
				return r, fmt.Errorf("bench: %s under %s: %w", w.Name, ps[i].Name, err)
			}
			return r, nil
		})
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			rep.Results = append(rep.Results, r)
			pairDone(r)
		}
	}
	if !cfg.NoForkScale {
		if rep.ForkScale, err = forkScale(&cfg, a, g); err != nil {
			return nil, err
		}
		rep.ForkScale = append(rep.ForkScale, rep.Baselines.KernelForkBySize...)
	}
	for i := range rep.Results {
		r := &rep.Results[i]
		r.ratios(&rep.Baselines, kernelRow(rep.Results, r.Workload), largestFolio(g, r))
	}
	rep.Recommendations = Recommend(rep.Results, cfg.Bloat)
	if err := a.Close(); err != nil { // every space is closed: busy is a leak
		return nil, fmt.Errorf("bench: closing the arena: %w", err)
	}
	rep.ElapsedNs = time.Since(start).Nanoseconds()
	return rep, nil
}

func kernelRow(rs []Result, workload string) *Result {
	for i := range rs {
		if rs[i].Workload == workload && rs[i].Policy == KernelSmall {
			return &rs[i]
		}
	}
	return nil
}

// largestFolio is the folio size in bytes a result's faults mostly
// allocate: its largest order (the base page for kernel rows).
func largestFolio(g folio.Geometry, r *Result) int {
	if r.Policy == KernelTHP {
		return 2 << 20
	}
	for o := len(r.FaultAlloc) - 1; o >= 0; o-- {
		if r.FaultAlloc[o] > 0 {
			return g.FolioSize(o)
		}
	}
	return g.PageSize
}

// rounds measures n variants of one workload (its policies, or the two
// kernel rows) in interleaved rounds: each round runs every variant once,
// in turn, on fresh memory, starting one variant further each round (a
// rotation), so that no variant always follows the same neighbour. It runs at least cfg.MinReps rounds, then more
// until every variant has run cfg.Duration (at most cfg.MaxReps rounds),
// and returns each variant's repetition of median wall time with the
// times of all of them. Interleaving and rotating put the machine's drift
// (another process starting, the caches warming) into every variant's
// spread rather than into the differences between them. A variant whose result
// has Err runs no more; an error returned ends the measurement.
func rounds(cfg *Config, what string, n int, once func(i int) (Result, error)) ([]Result, error) {
	reps := make([][]Result, n)
	spent := make([]time.Duration, n)
	failed := make([]bool, n)
	// wants: a variant that has not failed needs more rounds.
	wants := func(need func(i int) bool) bool {
		for i := range n {
			if !failed[i] && need(i) {
				return true
			}
		}
		return false
	}
	for round := 0; round < cfg.MaxReps; round++ {
		if !wants(func(int) bool { return true }) ||
			round >= cfg.MinReps && !wants(func(i int) bool { return spent[i] < cfg.Duration }) {
			break
		}
		if round > 0 {
			cfg.progress("%s: round %d", what, round+1)
		}
		for k := range n {
			i := (round + k) % n
			if failed[i] {
				continue
			}
			r, err := once(i)
			if err != nil {
				return nil, err
			}
			reps[i] = append(reps[i], r)
			spent[i] += r.Wall()
			failed[i] = r.Err != ""
		}
	}
	out := make([]Result, n)
	for i, rs := range reps {
		out[i] = median(rs)
	}
	return out, nil
}

// median returns the repetition of median wall time (the lower of two)
// with every repetition's time, in the order they ran, and their spread;
// or the failed repetition, if one failed (the last one run).
func median(rs []Result) Result {
	walls := make([]int64, len(rs))
	for i, r := range rs {
		walls[i] = r.WallNs
	}
	sorted := slices.Clone(rs)
	slices.SortStableFunc(sorted, func(a, b Result) int { return cmp.Compare(a.WallNs, b.WallNs) })
	r := sorted[(len(sorted)-1)/2]
	if last := rs[len(rs)-1]; last.Err != "" {
		r = last
	}
	r.Reps = len(rs)
	r.RepWallNs = walls
	r.Spread, _ = r.spread()
	return r
}

// RunOnSpace runs workload w once under policy p on a new space of arena
// a, which must have room for twice the workload's size, and returns its
// result with no ratios (they need the baselines of Run). w may be a
// custom workload. The space is closed before it returns.
func RunOnSpace(cfg Config, a *folio.Arena, w Workload, p Policy) (Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Result{}, err
	}
	return runOnSpace(&cfg, a, w, p, nil)
}

// runOnSpace is RunOnSpace with a hook that sees the space and the
// region's address after the workload, before the space is closed.
func runOnSpace(cfg *Config, a *folio.Arena, w Workload, p Policy, inspect func(*cow.Space, cow.Addr)) (Result, error) {
	r := Result{Workload: w.Name, Policy: p.Name, Orders: p.Orders.String(), CopyUnit: copyUnitName(p.CopyUnit),
		Options: optionsLiteral(p, cow.DefaultOrders(a))}
	s, err := cow.NewSpace(a, cow.Options{Orders: p.Orders, CopyUnit: p.CopyUnit})
	if err != nil {
		return r, err
	}
	defer s.Close()
	size := cfg.sizeOf(w)
	addr, err := s.Map(int(size), cow.ProtRead|cow.ProtWrite)
	if err != nil {
		return r, err
	}
	mem := spaceMemory{s, addr}
	wr := newRun(cfg, mem, size, a.PageSize())
	before := a.Stats()
	start := time.Now()
	if w.Func != nil {
		err = runCustom(wr, s, addr, w)
	} else {
		err = w.run(wr)
	}
	if err != nil {
		return r, err
	}
	r.WallNs = time.Since(start).Nanoseconds()
	st := s.Stats()
	after := a.Stats()
	var contents uint64
	if w.Func != nil { // what it touched is what it left non-zero
		if contents, err = wr.readBack(); err != nil {
			return r, err
		}
		wr.faultTime = time.Duration(r.WallNs) // any op may fault
		wr.faultMem = wr.touchedPages() * int64(wr.page)
	}

	n := a.MaxOrder() + 1
	r.FaultAlloc = slices.Clone(st.FaultAlloc[:n])
	r.FaultFallback = slices.Clone(st.FaultFallback[:n])
	r.ArenaAlloc = make([]uint64, n)
	for o := range n {
		r.Faults += st.FaultAlloc[o]
		r.Fallbacks += st.FaultFallback[o]
		r.ArenaAlloc[o] = after.Alloc[o] - before.Alloc[o]
	}
	r.WPCopy, r.WPReuse, r.CopyBytes, r.ForkCopies = st.WPCopy, st.WPReuse, st.CopyBytes, st.ForkCopies
	r.ResidentPages = st.Resident
	r.finish(wr)
	if w.Func != nil {
		r.Digest = mix(wr.digest, contents)
	} else {
		sample, err := wr.sample(mem, size)
		if err != nil {
			return r, err
		}
		r.Digest = mix(wr.digest, sample)
	}
	if inspect != nil {
		inspect(s, addr)
	}
	return r, s.Close()
}

func copyUnitName(u cow.CopyUnit) string {
	if u == cow.CopyFolio {
		return "folio"
	}
	return "page"
}

func kernelName(huge bool) string {
	if huge {
		return KernelTHP
	}
	return KernelSmall
}

// kernelOnce runs workload w once on a fresh plain mapping, advised
// MADV_HUGEPAGE if huge and MADV_NOHUGEPAGE otherwise.
func kernelOnce(cfg *Config, w Workload, huge bool) Result {
	r := Result{Workload: w.Name, Policy: kernelName(huge), Kernel: true}
	m, err := kernel.Map(int(cfg.Size), huge)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer m.Unmap()
	mem := kernelMemory{m}
	wr := newRun(cfg, mem, cfg.Size, 4096)
	flt := minorFaults()
	start := time.Now()
	if err := w.run(wr); err != nil {
		r.Err = err.Error()
		return r
	}
	r.WallNs = time.Since(start).Nanoseconds()
	r.KernelFaults = minorFaults() - flt
	r.ResidentPages = residentPages(m.B)
	r.finish(wr)
	sample, err := wr.sample(mem, cfg.Size)
	if err != nil {
		r.Err = err.Error()
	}
	r.Digest = mix(wr.digest, sample)
	return r
}

// forkScalePolicies are the policies whose Fork latency is charted
// against the resident size.
var forkScalePolicies = []string{"4KiB", "64KiB", "2MiB", "default"}

// forkScale measures Fork latency (the median of forkSamples) with each
// fork-scale fraction of Size resident.
func forkScale(cfg *Config, a *folio.Arena, g folio.Geometry) ([]ForkPoint, error) {
	var pts []ForkPoint
	for _, p := range policies(g, cfg.Policies, nil, false) {
		if !slices.Contains(forkScalePolicies, p.Name) {
			continue
		}
		cfg.progress("Fork latency by resident size: %s", p.Name)
		for _, n := range cfg.forkSizes() {
			lat, err := forkLatency(a, p, n, cfg.Seed)
			if err != nil {
				return nil, fmt.Errorf("bench: fork scale %s at %s: %w", p.Name, sizeString(n), err)
			}
			pts = append(pts, ForkPoint{Policy: p.Name, Resident: n, P50Ns: float64(lat.Nanoseconds())})
		}
	}
	return pts, nil
}

func forkLatency(a *folio.Arena, p Policy, size int64, seed uint64) (time.Duration, error) {
	s, err := cow.NewSpace(a, cow.Options{Orders: p.Orders, CopyUnit: p.CopyUnit})
	if err != nil {
		return 0, err
	}
	defer s.Close()
	addr, err := s.Map(int(size), cow.ProtRead|cow.ProtWrite)
	if err != nil {
		return 0, err
	}
	cfg := Config{Seed: seed}
	w := newRun(&cfg, spaceMemory{s, addr}, size, a.PageSize())
	if err := w.fill(); err != nil {
		return 0, err
	}
	var lat []time.Duration
	for range forkSamples {
		d, err := w.mem.forkRound(func(io.ReaderAt) error { return nil })
		if err != nil {
			return 0, err
		}
		lat = append(lat, d)
	}
	return percentile(lat, 50), s.Close()
}
