package kernel

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Mapping is a plain private anonymous mapping, the kind a process keeps its
// heap in: the kernel's side of a comparison.
type Mapping struct {
	B []byte
}

// Map maps size bytes of private anonymous memory. With huge false it is
// advised MADV_NOHUGEPAGE (4 KiB pages, the worst and most common case for
// fork); with huge true MADV_HUGEPAGE.
func Map(size int, huge bool) (*Mapping, error) {
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("mmap %d: %w", size, err)
	}
	advice := unix.MADV_NOHUGEPAGE
	if huge {
		advice = unix.MADV_HUGEPAGE
	}
	_ = unix.Madvise(b, advice)
	return &Mapping{B: b}, nil
}

// Touch writes one byte per 4 KiB of the mapping: first-touch faults.
func (m *Mapping) Touch() {
	for i := 0; i < len(m.B); i += 4096 {
		m.B[i] = 1
	}
}

// Drop returns the memory (MADV_DONTNEED): the next touch faults again.
func (m *Mapping) Drop() error { return unix.Madvise(m.B, unix.MADV_DONTNEED) }

// Unmap releases the mapping.
func (m *Mapping) Unmap() error {
	if len(m.B) == 0 {
		return nil
	}
	err := unix.Munmap(m.B)
	m.B = nil
	return err
}

// Addr returns the mapping's address, for alignment checks.
func (m *Mapping) Addr() uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(m.B))) }
