package folio

import (
	mm "github.com/anonfolio/anonfolio/internal/mm/folio"
)

// Geometry is what an arena's base page size implies: how many entries a
// page-table page holds, how large a PMD-order folio is, how many entries
// make a contiguous-PTE (contpte) block. It comes from the platform's rules
// (arm64's contpte sizes for 4, 16 and 64 KiB pages), not from constants.
type Geometry struct {
	PageSize     int  // base page size in bytes, a power of two
	PageShift    uint // log2(PageSize)
	MaxOrder     int  // largest folio order the arena hands out
	PMDOrder     int  // log2(PageSize/8): the pages one page-table page maps
	TableEntries int  // PageSize/8: entries in one page-table page
	ContPTEs     int  // entries in one contiguous-PTE block
	ContOrder    int  // log2(ContPTEs)
}

// NewGeometry returns the geometry of pageSize-byte pages (0: the host's)
// with folios up to maxOrder (0: the PMD order); ErrInvalid for a page size
// that is not a power of two in [4 KiB, 64 KiB] or an order above the PMD
// order.
func NewGeometry(pageSize, maxOrder int) (Geometry, error) {
	g, err := mm.NewGeometry(pageSize, maxOrder)
	return Geometry(g), err
}

// FolioSize returns the size in bytes of a folio of the given order.
func (g Geometry) FolioSize(order int) int { return g.PageSize << order }

// String describes the geometry: "page 4KiB, max folio 2MiB (order 9),
// PMD 2MiB (order 9), contpte 16×4KiB = 64KiB".
func (g Geometry) String() string { return mm.Geometry(g).String() }

// Platform is what anonfolio detected of the machine it runs on: the host
// page size, the kernel's transparent huge page settings, the CPU. Benchmark
// reports print it; NewArena uses the THP mode and sizes.
type Platform struct {
	GOOS, GOARCH string
	HostPageSize int // the kernel's base page size

	// THP is the host's transparent huge page mode ("always", "madvise" or
	// "never"), or "" where the host has none (not Linux, or no sysfs).
	THP string
	// THPPMDSize is the host's PMD-mapped THP size in bytes (0 if unknown).
	THPPMDSize int
	// MTHP lists the host's multi-size THP settings, smallest first.
	MTHP []THPSize

	CPU       string   // brand name
	Vendor    string   // vendor id as cpuid names it
	CacheLine int      // bytes; 0 if unknown
	L1D, L2   int      // bytes; 0 if unknown
	L3        int      // bytes; 0 if unknown
	Cores     int      // logical cores
	VM        bool     // running under a hypervisor
	Features  []string // the CPU features that matter for page copies
}

// THPSize is one multi-size THP setting of the host: a folio size in bytes
// and its mode ("always", "inherit", "madvise", "never").
type THPSize struct {
	Size int
	Mode string
}

// HostPlatform returns the platform this process runs on, detected once.
func HostPlatform() Platform {
	p := mm.HostPlatform()
	out := Platform{
		GOOS: p.GOOS, GOARCH: p.GOARCH, HostPageSize: p.HostPageSize,
		THP: p.THP, THPPMDSize: p.THPPMDSize,
		CPU: p.CPU, Vendor: p.Vendor, CacheLine: p.CacheLine, L1D: p.L1D, L2: p.L2, L3: p.L3,
		Cores: p.Cores, VM: p.VM, Features: p.Features,
	}
	for _, s := range p.MTHP {
		out.MTHP = append(out.MTHP, THPSize(s))
	}
	return out
}

// THPAllowed reports whether MADV_HUGEPAGE on an arena can give it huge
// pages: the host mode is "always" or "madvise".
func (p Platform) THPAllowed() bool { return p.THP == "always" || p.THP == "madvise" }

// String describes the platform in a few lines, for reports.
func (p Platform) String() string {
	q := mm.Platform{
		GOOS: p.GOOS, GOARCH: p.GOARCH, HostPageSize: p.HostPageSize,
		THP: p.THP, THPPMDSize: p.THPPMDSize,
		CPU: p.CPU, Vendor: p.Vendor, CacheLine: p.CacheLine, L1D: p.L1D, L2: p.L2, L3: p.L3,
		Cores: p.Cores, VM: p.VM, Features: p.Features,
	}
	for _, s := range p.MTHP {
		q.MTHP = append(q.MTHP, mm.THPSize(s))
	}
	return q.String()
}
