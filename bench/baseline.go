package bench

import (
	"fmt"
	"slices"
	"time"

	"github.com/anonfolio/anonfolio/internal/kernel"
)

// A Baseline is one figure measured in the same run as ours, or the reason
// it could not be (Err: no fork() under qemu-user, not Linux, ...).
type Baseline struct {
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	Err   string  `json:"error,omitempty"`
}

// OK reports whether the baseline was measured.
func (b Baseline) OK() bool { return b.Err == "" && b.Value > 0 }

// ratio is x / b, or 0 when b is unavailable.
func (b Baseline) ratio(x float64) float64 {
	if !b.OK() || x <= 0 {
		return 0
	}
	return x / b.Value
}

func failed(unit string, err error) Baseline { return Baseline{Unit: unit, Err: err.Error()} }

// Bandwidth is streaming memclr or memmove in blocks of one size over a
// buffer of the run's size (at the default, larger than the caches), as the
// fault path meets memory.
type Bandwidth struct {
	Block     int     `json:"block"`
	NsPer4KiB float64 `json:"ns_per_4kib"`
	GBps      float64 `json:"gb_per_s"`
}

// Baselines are the physical limits and the host kernel's figures.
type Baselines struct {
	Memclr  []Bandwidth `json:"memclr"`  // 4 KiB, 64 KiB and 2 MiB blocks
	Memmove []Bandwidth `json:"memmove"` // the same

	KernelFault    Baseline `json:"kernel_fault"`     // first-touch fault per 4 KiB, MADV_NOHUGEPAGE
	KernelFaultTHP Baseline `json:"kernel_fault_thp"` // the same, MADV_HUGEPAGE
	KernelFork     Baseline `json:"kernel_fork"`      // fork() with Size resident in 4 KiB pages, median
	KernelForkTHP  Baseline `json:"kernel_fork_thp"`  // the same in THP
	KernelCOW      Baseline `json:"kernel_cow"`       // COW fault per 4 KiB page after fork()

	// KernelForkBySize is fork() at the fork-scale resident sizes.
	KernelForkBySize []ForkPoint `json:"kernel_fork_by_size"`
}

// The kernel's fork entry points. Tests replace them to see a host where
// fork() fails (qemu-user may refuse the raw clone): its baselines are
// then reported unavailable and the rest of the run goes on.
var (
	kernelFork1    = kernel.Fork
	kernelForkHeld = kernel.ForkHeld
)

// bandwidthBlocks are the block sizes of the memclr and memmove baselines.
var bandwidthBlocks = []int{4 << 10, 64 << 10, 2 << 20}

// forkSamples is how many fork()s a kernel fork figure is the median of.
const forkSamples = 5

// measureBaselines measures every baseline at size bytes. It runs before
// the arena exists: a fork() copies the page tables of every mapping of
// the process, and ours would tax the kernel's figure.
func measureBaselines(cfg *Config) Baselines {
	size := int(cfg.Size)
	var b Baselines
	cfg.progress("baselines: memclr and memmove of %s", sizeString(cfg.Size))
	b.Memclr, b.Memmove = bandwidth(size)

	cfg.progress("baselines: the kernel's first-touch fault")
	b.KernelFault = kernelFault(size, false)
	b.KernelFaultTHP = kernelFault(size, true)

	cfg.progress("baselines: the kernel's fork() and COW fault")
	b.KernelFork = kernelFork(size, false)
	b.KernelForkTHP = kernelFork(size, true)
	b.KernelCOW = kernelCOW(size)
	if !cfg.NoForkScale {
		for _, n := range cfg.forkSizes() {
			k := kernelFork(int(n), false)
			b.KernelForkBySize = append(b.KernelForkBySize, ForkPoint{Policy: KernelSmall, Resident: n, P50Ns: k.Value, Err: k.Err})
		}
	}
	return b
}

// forkSizes are the distinct resident sizes of the fork scale, smallest
// first.
func (c *Config) forkSizes() []int64 {
	var s []int64
	for _, f := range c.ForkScale {
		s = append(s, scaled(c.Size, f))
	}
	slices.Sort(s)
	return slices.Compact(s)
}

// scaled is f of size, rounded down to 2 MiB (at least 2 MiB).
func scaled(size int64, f float64) int64 {
	return max(sizeAlign, int64(float64(size)*f)/sizeAlign*sizeAlign)
}

// plainBuffer returns size bytes of resident memory outside the Go heap (a
// plain mapping, so that the heap does not keep it) and its release.
func plainBuffer(size int) ([]byte, func()) {
	m, err := kernel.Map(size, false)
	if err != nil {
		b := make([]byte, size)
		clear(b)
		return b, func() {}
	}
	clear(m.B)
	return m.B, func() { m.Unmap() }
}

// bandwidth measures streaming memclr and memmove, best of three passes
// for each block size.
func bandwidth(size int) (clr, mv []Bandwidth) {
	src, freeSrc := plainBuffer(size)
	defer freeSrc()
	dst, freeDst := plainBuffer(size)
	defer freeDst()
	for i := range src {
		src[i] = byte(i)
	}
	for _, block := range bandwidthBlocks {
		if block > size {
			continue
		}
		c := best(3, func() time.Duration {
			start := time.Now()
			for i := 0; i+block <= size; i += block {
				clear(dst[i : i+block])
			}
			return time.Since(start)
		})
		m := best(3, func() time.Duration {
			start := time.Now()
			for i := 0; i+block <= size; i += block {
				copy(dst[i:i+block], src[i:i+block])
			}
			return time.Since(start)
		})
		clr = append(clr, newBandwidth(block, size, c))
		mv = append(mv, newBandwidth(block, size, m))
	}
	return clr, mv
}

func newBandwidth(block, size int, d time.Duration) Bandwidth {
	ns := float64(d.Nanoseconds())
	return Bandwidth{Block: block, NsPer4KiB: ns / float64(size/4096), GBps: float64(size) / ns}
}

func best(n int, f func() time.Duration) time.Duration {
	b := time.Duration(1<<63 - 1)
	for range n {
		b = min(b, f())
	}
	return b
}

// kernelFault is the kernel's first-touch fault per 4 KiB of a fresh plain
// mapping, the better of two rounds (the second after MADV_DONTNEED).
func kernelFault(size int, huge bool) Baseline {
	const unit = "ns/4KiB"
	m, err := kernel.Map(size, huge)
	if err != nil {
		return failed(unit, err)
	}
	defer m.Unmap()
	d := best(2, func() time.Duration {
		m.Drop()
		start := time.Now()
		m.Touch()
		return time.Since(start)
	})
	return Baseline{Value: float64(d.Nanoseconds()) / float64(size/4096), Unit: unit}
}

// kernelFork is the median of forkSamples fork()s of this process with
// size bytes resident in a plain mapping.
func kernelFork(size int, huge bool) Baseline {
	const unit = "ns"
	m, err := kernel.Map(size, huge)
	if err != nil {
		return failed(unit, err)
	}
	defer m.Unmap()
	m.Touch()
	var lat []time.Duration
	for range forkSamples {
		d, err := kernelFork1()
		if err != nil {
			return failed(unit, fmt.Errorf("fork() unavailable here: %w", err))
		}
		lat = append(lat, d)
	}
	return Baseline{Value: float64(percentile(lat, 50).Nanoseconds()), Unit: unit}
}

// kernelCOW is the kernel's COW fault per 4 KiB page: a write to every
// page of a plain 4 KiB-page mapping while a fork()ed child holds it, the
// better of two rounds.
func kernelCOW(size int) Baseline {
	const unit = "ns/4KiB"
	m, err := kernel.Map(size, false)
	if err != nil {
		return failed(unit, err)
	}
	defer m.Unmap()
	m.Touch()
	bestNs := 0.0
	for range 2 {
		var d time.Duration
		if err := kernelForkHeld(func() {
			start := time.Now()
			m.Touch()
			d = time.Since(start)
		}); err != nil {
			return failed(unit, fmt.Errorf("fork() unavailable here: %w", err))
		}
		ns := float64(d.Nanoseconds()) / float64(size/4096)
		if bestNs == 0 || ns < bestNs {
			bestNs = ns
		}
	}
	return Baseline{Value: bestNs, Unit: unit}
}

// memclrFor returns the memclr baseline for a folio of the given size: the
// largest measured block that is not larger.
func (b *Baselines) memclrFor(folioBytes int) Baseline {
	return blockFor(b.Memclr, folioBytes)
}

func (b *Baselines) memmoveFor(bytes int) Baseline { return blockFor(b.Memmove, bytes) }

func blockFor(bw []Bandwidth, bytes int) Baseline {
	var pick *Bandwidth
	for i := range bw {
		if bw[i].Block <= bytes || pick == nil {
			pick = &bw[i]
		}
	}
	if pick == nil {
		return Baseline{Unit: "ns/4KiB", Err: "not measured"}
	}
	return Baseline{Value: pick.NsPer4KiB, Unit: "ns/4KiB"}
}
