//go:build race || !linux

package folio

import "unsafe"

// sysMem backs the arena with a Go heap allocation. Under the race detector
// this is what makes races on page contents visible: the detector ignores
// memory outside the Go heap (pebble does the same for its manual
// allocations). Off Linux it is the only portable backing.
type sysMem struct {
	mem []byte
}

func sysReserve(size, align uintptr) (sysMem, error) {
	b := make([]byte, size+align)
	head := (align - uintptr(unsafe.Pointer(unsafe.SliceData(b)))&(align-1)) & (align - 1)
	return sysMem{mem: b[head : head+size : head+size]}, nil
}

func (m *sysMem) free() error {
	m.mem = nil
	return nil
}

func sysHugePage([]byte, bool) {}

// sysPopulate: a fresh Go allocation is already zero; touching it commits it
// as the mmap backing would.
func sysPopulate(b []byte, hostPage int) error {
	touchPages(b, hostPage)
	return nil
}

// sysUnused emulates MADV_DONTNEED: the pages read zero afterwards. The heap
// cannot hand them back to the kernel, so the emulation clears them.
func sysUnused(b []byte, lazy bool) (released, zeroed bool) {
	clear(b)
	return true, true
}

func sysZeroPage(size int) ([]byte, error) { return make([]byte, size), nil }

// sysProtect cannot protect part of a Go heap allocation: the debug
// build's quarantine poisons the pages instead.
func sysProtect([]byte, bool) bool { return false }

// sysMapBounce cannot map memory of its own here: the debug build's view
// bounce buffers are Go slices, poisoned when retired.
func sysMapBounce(int) []byte { return nil }

func sysUnmapBounce([]byte) {}

func sysFreeZeroPage([]byte) {}

const backingName = "Go heap"
