package folio

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/klauspost/cpuid/v2"
)

// Platform describes the machine an arena runs on: what the host kernel
// offers for anonymous memory and the CPU facts that matter for copying and
// zeroing pages. It is detected once per process; the bench prints it next
// to its results.
type Platform struct {
	GOOS, GOARCH string
	HostPageSize int // the kernel's base page size

	// THP is the host's transparent huge page mode ("always", "madvise" or
	// "never"), or "" where the host has none (not Linux, or no sysfs).
	THP string
	// THPPMDSize is the host's PMD-mapped THP size in bytes (0 if unknown).
	THPPMDSize int
	// MTHP lists the host's multi-size THP settings, smallest first: each
	// size in bytes with its mode ("always", "inherit", "madvise", "never").
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

// THPSize is one multi-size THP setting of the host.
type THPSize struct {
	Size int
	Mode string
}

var (
	platformOnce sync.Once
	platform     Platform
)

// HostPlatform returns the platform this process runs on, detected once.
func HostPlatform() Platform {
	platformOnce.Do(func() {
		platform = detectPlatform()
	})
	return platform
}

// copyFeatures are the features that change how fast pages are zeroed and
// copied: x86 string-op and vector extensions, arm64 SIMD, LSE atomics and
// the memory-copy instructions.
var copyFeatures = []cpuid.FeatureID{
	cpuid.SSE2, cpuid.AVX2, cpuid.AVX512F, cpuid.ERMS, cpuid.FSRM,
	cpuid.ASIMD, cpuid.ATOMICS, cpuid.SVE, cpuid.SVE2, cpuid.MOPS,
}

func detectPlatform() Platform {
	c := &cpuid.CPU
	p := Platform{
		GOOS:         runtime.GOOS,
		GOARCH:       runtime.GOARCH,
		HostPageSize: os.Getpagesize(),
		CPU:          strings.TrimSpace(c.BrandName),
		Vendor:       c.VendorString,
		CacheLine:    positive(c.CacheLine),
		L1D:          positive(c.Cache.L1D),
		L2:           positive(c.Cache.L2),
		L3:           positive(c.Cache.L3),
		Cores:        runtime.NumCPU(),
		VM:           c.VM(),
	}
	if p.Vendor == "" {
		p.Vendor = c.VendorID.String()
	}
	if p.CPU == "" {
		p.CPU = "unknown " + runtime.GOARCH + " CPU"
	}
	for _, f := range copyFeatures {
		if c.Supports(f) {
			p.Features = append(p.Features, f.String())
		}
	}
	p.THP, p.THPPMDSize, p.MTHP = detectTHP()
	return p
}

// positive maps cpuid's "unknown" (-1 or 0) to 0.
func positive(n int) int {
	if n < 0 {
		return 0
	}
	return n
}

// THPAllowed reports whether MADV_HUGEPAGE on our reservation can give us
// huge pages: the host mode is "always" or "madvise".
func (p Platform) THPAllowed() bool { return p.THP == "always" || p.THP == "madvise" }

// String describes the platform in a few lines for reports.
func (p Platform) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s, host page %s, %d cores", p.GOOS, p.GOARCH, sizeString(int64(p.HostPageSize)), p.Cores)
	if p.VM {
		b.WriteString(" (VM)")
	}
	fmt.Fprintf(&b, "\ncpu: %s (%s), cache line %d, L1d %s, L2 %s, L3 %s\nfeatures: %s\n",
		p.CPU, p.Vendor, p.CacheLine, cacheString(p.L1D), cacheString(p.L2), cacheString(p.L3),
		strings.Join(p.Features, " "))
	switch p.THP {
	case "":
		b.WriteString("thp: none")
	default:
		fmt.Fprintf(&b, "thp: %s, PMD %s", p.THP, sizeString(int64(p.THPPMDSize)))
		var on []string
		for _, s := range p.MTHP {
			if s.Mode != "never" {
				on = append(on, sizeString(int64(s.Size))+"="+s.Mode)
			}
		}
		if len(on) > 0 {
			fmt.Fprintf(&b, ", mTHP %s", strings.Join(on, " "))
		}
	}
	return b.String()
}

func cacheString(n int) string {
	if n == 0 {
		return "?"
	}
	return sizeString(int64(n))
}

// bracketed returns the selected word of a sysfs choice: "always [madvise]
// never" → "madvise".
func bracketed(s string) string {
	i := strings.IndexByte(s, '[')
	j := strings.IndexByte(s, ']')
	if i < 0 || j < i {
		return ""
	}
	return s[i+1 : j]
}
