package conformance

import (
	"flag"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/anonfolio/anonfolio/internal/spacetest"
)

// Flags of the long modes.
var (
	diffOps  = flag.Int("conformance.ops", 0, "operations of the differential test in all (0: 120000, fewer with -short, -race or under emulation)")
	diffSeed = flag.Uint64("conformance.seed", 1, "seed of the differential test's operations (0: from the clock)")
	longRun  = flag.Duration("conformance.stress", 0, "how long each stress configuration runs (0: a fraction of a second)")
)

// pageSetup is a base page size of the matrix, with the largest folio
// order its arenas use.
type pageSetup struct {
	pageSize int
	maxOrder int // 0: the PMD order
}

// pageSetups are the page sizes the differential test and the stress run
// at. At 16 and 64 KiB pages the PMD order means 32 MiB and 512 MiB folios:
// MaxOrder caps both at 2 MiB (the contpte block of either), so arenas stay
// small, under -race too, where they live on the Go heap.
var pageSetups = []pageSetup{{4096, 0}, {16384, 7}, {65536, 5}}

func (p pageSetup) name() string {
	return map[int]string{4096: "4KiB", 16384: "16KiB", 65536: "64KiB"}[p.pageSize]
}

// geometry returns the geometry of the setup's arenas.
func (p pageSetup) geometry(t testing.TB) folio.Geometry {
	g, err := folio.NewGeometry(p.pageSize, p.maxOrder)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// env returns an Env of size bytes with the setup's pages and cap.
func (p pageSetup) env(t testing.TB, size int64) *spacetest.Env {
	return spacetest.NewConfig(t, folio.Config{Size: size, PageSize: p.pageSize, MaxOrder: p.maxOrder})
}

// orders returns the orders of configuration c for geometry g, and false
// when one is above the capped MaxOrder.
func orders(c spacetest.Config, g folio.Geometry) (cow.OrderSet, bool) {
	o := c.Orders(g)
	return o, o.Highest() <= g.MaxOrder
}

// matrix runs fn for every page setup and configuration that fits it.
func matrix(t *testing.T, fn func(t *testing.T, p pageSetup, opts cow.Options)) {
	for _, p := range pageSetups {
		t.Run(p.name(), func(t *testing.T) {
			g := p.geometry(t)
			for _, c := range spacetest.Configs {
				o, ok := orders(c, g)
				if !ok {
					continue // named in matrixSize's log line
				}
				t.Run(c.Name, func(t *testing.T) { fn(t, p, cow.Options{Orders: o}) })
			}
		})
	}
}

// matrixSize returns how many configurations matrix runs.
func matrixSize(t testing.TB) int {
	n := 0
	for _, p := range pageSetups {
		g := p.geometry(t)
		for _, c := range spacetest.Configs {
			if _, ok := orders(c, g); ok {
				n++
			}
		}
	}
	return n
}

// emulated reports whether the test runs under an emulator such as
// qemu-user: an arm64 binary on a host whose /proc/cpuinfo describes an
// x86 CPU. Everything is an order of magnitude slower there.
var emulated = func() bool {
	if runtime.GOARCH != "arm64" {
		return false
	}
	b, err := os.ReadFile("/proc/cpuinfo")
	return err == nil && strings.Contains(string(b), "vendor_id")
}()

// scale divides a default amount of work for -short, -race and emulation.
func scale(n int) int {
	if testing.Short() {
		n /= 8
	}
	if raceEnabled {
		n /= 4
	}
	if emulated {
		n /= 8
	}
	return max(n, 1)
}
