package bench

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalid: a bad configuration (an unknown workload or policy, a size
// that is not a positive multiple of 2 MiB, a threshold out of range). Returned errors wrap it with the value at fault.
var ErrInvalid = errors.New("bench: invalid configuration")

// Config describes one run. The zero value of a field means its default.
type Config struct {
	// Size is the memory each workload maps and works on, in bytes: a
	// multiple of 2 MiB. Default 256 MiB. The arena holds twice that (fork
	// churn copies) plus slack.
	Size int64
	// MinReps is how many times each (workload, policy) pair runs at
	// least, each time on a fresh space; the median repetition is
	// reported, and the spread of the repetitions is the run-to-run noise
	// that decides ties (see Recommend). Default 3.
	MinReps int
	// Duration is how long each pair is measured at least: after MinReps
	// repetitions it is repeated until it has run this long (at most
	// MaxReps times). Default 0: MinReps repetitions.
	Duration time.Duration
	// MaxReps bounds the repetitions Duration asks for. Default 5, or
	// MinReps if that is more.
	MaxReps int
	// Seed makes every workload's addresses and values deterministic.
	Seed uint64

	// Workloads to run, by name (see Workloads, and Custom); nil means
	// all, the built-in ones and Custom.
	Workloads []string
	// Custom are workloads of your own (see Workload.Func): each runs
	// under every policy like the built-in ones, with no kernel rows.
	Custom []Workload
	// Policies to run, by name (see PolicyNames); nil means all.
	Policies []string
	// COW lists the COW units the forking workloads run with: "page",
	// "folio"; nil means both. (The others never copy, so they run once.)
	COW []string
	// NoKernel leaves out the kernel rows: the workloads run on plain
	// kernel memory (4 KiB pages and THP), the baselines of the time ratios.
	NoKernel bool

	// SparseStride is the sparse-touch workload's distance between writes
	// in bytes (one 8-byte write every SparseStride). Default 64 KiB.
	SparseStride int
	// WritePercent is the share of pages fork churn writes per round.
	// Default 10.
	WritePercent float64
	// ForkRounds is how many Forks fork churn does. Default 8.
	ForkRounds int
	// ScanPasses is how many passes the read-mostly scan makes. Default 4.
	ScanPasses int
	// PinRange is the pinned-I/O workload's range size in bytes. Default
	// 64 KiB.
	PinRange int
	// TempDir holds the pinned-I/O workload's file; "" means os.TempDir.
	TempDir string

	// Bloat is the recommendation's threshold: a policy qualifies if its
	// resident pages exceed the pages actually touched by at most this
	// fraction of them. Default 0.5.
	Bloat float64
	// ForkScale lists the resident sizes (fractions of Size) at which Fork
	// latency is measured for the Fork-vs-resident chart. Default 1/8, 1/4,
	// 1/2, 1. Set NoForkScale to skip it.
	ForkScale   []float64
	NoForkScale bool

	// Progress, if set, is called with a line of progress as the run goes.
	Progress func(string)
}

// Defaults.
const (
	DefaultSize         = 256 << 20
	DefaultSparseStride = 64 << 10
	DefaultWritePercent = 10
	DefaultForkRounds   = 8
	DefaultScanPasses   = 4
	DefaultPinRange     = 64 << 10
	DefaultBloat        = 0.5
	DefaultMinReps      = 3
	DefaultMaxReps      = 5
	sizeAlign           = 2 << 20
)

// withDefaults returns c with its zero fields set to their defaults, or an
// error wrapping ErrInvalid.
func (c Config) withDefaults() (Config, error) {
	if c.Size == 0 {
		c.Size = DefaultSize
	}
	if c.Size < 0 || c.Size%sizeAlign != 0 {
		return c, fmt.Errorf("%w: size %d is not a positive multiple of 2 MiB", ErrInvalid, c.Size)
	}
	if c.Duration < 0 {
		return c, fmt.Errorf("%w: duration %v", ErrInvalid, c.Duration)
	}
	if c.MinReps < 0 || c.MaxReps < 0 {
		return c, fmt.Errorf("%w: negative repetitions (MinReps %d, MaxReps %d)", ErrInvalid, c.MinReps, c.MaxReps)
	}
	if c.MinReps == 0 {
		c.MinReps = DefaultMinReps
	}
	if c.MaxReps == 0 {
		c.MaxReps = max(DefaultMaxReps, c.MinReps)
	}
	if c.MinReps > c.MaxReps {
		return c, fmt.Errorf("%w: MinReps %d is more than MaxReps %d", ErrInvalid, c.MinReps, c.MaxReps)
	}
	if c.SparseStride == 0 {
		c.SparseStride = DefaultSparseStride
	}
	if c.SparseStride < 8 || c.SparseStride%8 != 0 || int64(c.SparseStride) > c.Size {
		return c, fmt.Errorf("%w: sparse stride %d", ErrInvalid, c.SparseStride)
	}
	if c.WritePercent == 0 {
		c.WritePercent = DefaultWritePercent
	}
	if !(c.WritePercent > 0 && c.WritePercent <= 100) {
		return c, fmt.Errorf("%w: write percent %v", ErrInvalid, c.WritePercent)
	}
	if c.ForkRounds == 0 {
		c.ForkRounds = DefaultForkRounds
	}
	if c.ScanPasses == 0 {
		c.ScanPasses = DefaultScanPasses
	}
	if c.PinRange == 0 {
		c.PinRange = DefaultPinRange
	}
	if c.PinRange <= 0 || int64(c.PinRange) > c.Size || c.Size%int64(c.PinRange) != 0 {
		return c, fmt.Errorf("%w: pin range %d does not divide size %d", ErrInvalid, c.PinRange, c.Size)
	}
	if c.ForkRounds < 0 || c.ScanPasses < 0 {
		return c, fmt.Errorf("%w: negative count", ErrInvalid)
	}
	if c.Bloat == 0 {
		c.Bloat = DefaultBloat
	}
	if c.Bloat < 0 {
		return c, fmt.Errorf("%w: bloat threshold %v", ErrInvalid, c.Bloat)
	}
	if c.ForkScale == nil {
		c.ForkScale = []float64{1.0 / 8, 1.0 / 4, 1.0 / 2, 1}
	}
	for _, f := range c.ForkScale {
		if !(f > 0 && f <= 1) {
			return c, fmt.Errorf("%w: fork scale %v is not in (0, 1]", ErrInvalid, f)
		}
	}
	if err := c.checkCustom(); err != nil {
		return c, err
	}
	for _, w := range c.Workloads {
		if c.workload(w) == nil {
			return c, fmt.Errorf("%w: unknown workload %q", ErrInvalid, w)
		}
	}
	for _, u := range c.COW {
		if u != "page" && u != "folio" {
			return c, fmt.Errorf("%w: unknown COW unit %q (page or folio)", ErrInvalid, u)
		}
	}
	for _, p := range c.Policies {
		if !validPolicyName(p) {
			return c, fmt.Errorf("%w: unknown policy %q", ErrInvalid, p)
		}
	}
	return c, nil
}

func (c Config) progress(format string, args ...any) {
	if c.Progress != nil {
		c.Progress(fmt.Sprintf(format, args...))
	}
}
