//go:build linux && !race

package folio

import (
	"testing"

	"golang.org/x/sys/unix"
)

// residentPages returns how many host pages of b are resident.
func residentPages(t *testing.T, b []byte) int {
	t.Helper()
	host := HostPlatform().HostPageSize
	n := 0
	for i := 0; i < len(b); i += host {
		if resident(b[i : i+host]) {
			n++
		}
	}
	return n
}

func TestPopulateMakesTheBackingResident(t *testing.T) {
	a := newTestArena(t, Config{Size: 8 << 20, Populate: true})
	host := HostPlatform().HostPageSize
	if got, want := residentPages(t, a.mem), len(a.mem)/host; got != want {
		t.Fatalf("after Populate %d of %d host pages are resident", got, want)
	}
	st := a.Stats()
	if !st.Populated || st.ResidentFree != st.TotalPages {
		t.Fatalf("stats after Populate: %+v", st)
	}
	// A populated arena keeps its memory by default.
	pfn, _ := a.AllocFolio(a.MaxOrder(), AllocZero)
	if z := a.Stats().BytesZeroed; z != 0 {
		t.Fatalf("populated fresh memory was zeroed again (%d bytes)", z)
	}
	a.FolioPut(pfn, 1)
	if a.Stats().BytesReleased != 0 || residentPages(t, a.mem) != len(a.mem)/host {
		t.Fatal("a populated arena returned memory without being asked")
	}
	// Unless asked.
	if n := a.Scavenge(0); n != int64(len(a.mem)) {
		t.Fatalf("Scavenge(0) released %d of %d bytes", n, len(a.mem))
	}
	if got := residentPages(t, a.mem); got != 0 {
		t.Fatalf("after Scavenge(0) %d host pages are still resident", got)
	}
}

func TestFreshArenaIsNotResident(t *testing.T) {
	a := newTestArena(t, Config{Size: 8 << 20})
	if got := residentPages(t, a.mem); got != 0 {
		t.Fatalf("a fresh MAP_NORESERVE arena has %d resident pages", got)
	}
	pfn, _ := a.AllocFolio(0, AllocZero)
	a.PageBytes(pfn, 1)[0] = 1
	if got := residentPages(t, a.mem); got == 0 {
		t.Fatal("a written page is not resident")
	}
	a.FolioPut(pfn, 1)
	a.Scavenge(0)
	if got := residentPages(t, a.mem); got != 0 {
		t.Fatalf("%d host pages resident after Scavenge(0)", got)
	}
}

func TestZeroPageIsReadOnlyZeros(t *testing.T) {
	a := newTestArena(t, Config{Size: 2 << 20, PageSize: 4096})
	z := a.ZeroPage()
	if len(z) != 4096 || !allZero(z) {
		t.Fatalf("zero page: %d bytes, zero %v", len(z), allZero(z))
	}
	// The mapping is PROT_READ: mprotect to the same protection is a no-op
	// that only succeeds on a mapping we own; a write would fault.
	if err := unix.Mprotect(z, unix.PROT_READ); err != nil {
		t.Fatalf("zero page is not its own mapping: %v", err)
	}
}

func TestDontneedProbe(t *testing.T) {
	if !dontneedZeroes() {
		t.Fatal("MADV_DONTNEED does not zero private anonymous memory on this host")
	}
}
