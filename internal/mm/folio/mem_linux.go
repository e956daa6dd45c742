//go:build linux && !race

package folio

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sysMem is the arena's backing: one private anonymous mapping, reserved
// with MAP_NORESERVE (the kernel commits host pages only when touched) and
// trimmed so that mem starts on an align boundary.
type sysMem struct {
	mem []byte // the usable, aligned part
}

// sysReserve maps size bytes aligned to align: reserve size+align, then unmap
// the unaligned head and the tail (the runtime's sysReserveAligned).
func sysReserve(size, align uintptr) (sysMem, error) {
	p, err := unix.MmapPtr(-1, 0, nil, size+align, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return sysMem{}, fmt.Errorf("%w: mmap of %d bytes: %v", ErrNoMemory, size+align, err)
	}
	head := (align - uintptr(p)&(align-1)) & (align - 1)
	base := unsafe.Add(p, head)
	if head > 0 {
		_ = unix.MunmapPtr(p, head)
	}
	if tail := align - head; tail > 0 {
		_ = unix.MunmapPtr(unsafe.Add(base, size), tail)
	}
	m := sysMem{mem: unsafe.Slice((*byte)(base), size)}
	sysName(m.mem)
	return m, nil
}

// free unmaps the whole reservation. Nothing may touch mem afterwards.
func (m *sysMem) free() error {
	if len(m.mem) == 0 {
		return nil
	}
	err := unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(m.mem)), uintptr(len(m.mem)))
	m.mem = nil
	return err
}

// vmaName labels the reservation in /proc/self/maps and smaps.
var vmaName = []byte("anonfolio arena\x00")

// sysName names the mapping (PR_SET_VMA_ANON_NAME, Linux 5.17 with
// CONFIG_ANON_VMA_NAME); a kernel without it simply keeps it unnamed.
func sysName(b []byte) {
	_ = unix.Prctl(unix.PR_SET_VMA, unix.PR_SET_VMA_ANON_NAME,
		uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)),
		uintptr(unsafe.Pointer(&vmaName[0])))
}

// sysHugePage advises the kernel to back b with transparent huge pages (or,
// with huge false, never to).
func sysHugePage(b []byte, huge bool) {
	advice := unix.MADV_NOHUGEPAGE
	if huge {
		advice = unix.MADV_HUGEPAGE
	}
	_ = unix.Madvise(b, advice)
}

// populateWriteBroken is set once MADV_POPULATE_WRITE turned out to be
// unsupported (EINVAL before Linux 5.14); we then touch pages instead.
var populateWriteBroken atomic.Bool

// sysPopulate prefaults b writable so that no later access waits on the
// kernel's own page fault.
func sysPopulate(b []byte, hostPage int) error {
	if !populateWriteBroken.Load() {
		err := unix.Madvise(b, unix.MADV_POPULATE_WRITE)
		switch {
		case err == nil && resident(b[:hostPage]) && resident(b[len(b)-hostPage:]):
			return nil
		case err == nil:
			// Accepted but not done: an emulator (qemu-user treats
			// madvise as a hint and ignores it) or a filter.
			populateWriteBroken.Store(true)
		case errors.Is(err, unix.EINVAL):
			populateWriteBroken.Store(true)
		default:
			return fmt.Errorf("%w: MADV_POPULATE_WRITE: %v", ErrNoMemory, err)
		}
	}
	touchPages(b, hostPage)
	return nil
}

// madvFreeBroken is set once MADV_FREE turned out to be unsupported.
var madvFreeBroken atomic.Bool

// sysUnused returns b's host pages to the kernel. With lazy it uses MADV_FREE
// (the kernel reclaims them only under pressure, and they need not read zero
// afterwards); otherwise MADV_DONTNEED, after which they read zero. It
// reports whether the pages were released and whether they now read zero.
func sysUnused(b []byte, lazy bool) (released, zeroed bool) {
	if lazy && !madvFreeBroken.Load() {
		err := unix.Madvise(b, unix.MADV_FREE)
		if err == nil {
			return true, false
		}
		if errors.Is(err, unix.EINVAL) {
			madvFreeBroken.Store(true)
		}
	}
	if err := unix.Madvise(b, unix.MADV_DONTNEED); err != nil {
		return false, false
	}
	return true, dontneedZeroes()
}

// sysProtect makes b inaccessible, or accessible again (the debug build's
// quarantine); it reports whether it could.
func sysProtect(b []byte, access bool) bool {
	prot := unix.PROT_NONE
	if access {
		prot = unix.PROT_READ | unix.PROT_WRITE
	}
	return unix.Mprotect(b, prot) == nil
}

// sysMapBounce maps n bytes of their own (the debug build's view bounce
// buffers), or returns nil.
func sysMapBounce(n int) []byte {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil
	}
	return b
}

// sysUnmapBounce unmaps a buffer sysMapBounce made.
func sysUnmapBounce(b []byte) { _ = unix.Munmap(b) }

var (
	dontneedOnce   sync.Once
	dontneedZeroed bool
)

// dontneedZeroes reports whether MADV_DONTNEED really drops private
// anonymous pages here, so that they read zero afterwards. It is probed once
// per process on a scratch page: the known-zero tracking must never believe
// memory is zero when an emulator (qemu-user may ignore madvise) kept the
// old bytes, or a fresh folio would show one space another's data.
func dontneedZeroes() bool {
	dontneedOnce.Do(func() {
		host := os.Getpagesize()
		p, err := unix.MmapPtr(-1, 0, nil, uintptr(host), unix.PROT_READ|unix.PROT_WRITE,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return
		}
		b := unsafe.Slice((*byte)(p), host)
		b[0], b[host-1] = 0xa5, 0x5a
		dontneedZeroed = unix.Madvise(b, unix.MADV_DONTNEED) == nil && b[0] == 0 && b[host-1] == 0
		_ = unix.MunmapPtr(p, uintptr(host))
	})
	return dontneedZeroed
}

// resident reports whether every host page of b is resident (mincore; x/sys
// has no wrapper for it on Linux).
func resident(b []byte) bool {
	host := os.Getpagesize()
	vec := make([]byte, (len(b)+host-1)/host)
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(b))),
		uintptr(len(b)), uintptr(unsafe.Pointer(unsafe.SliceData(vec))))
	if errno != 0 {
		return false
	}
	for _, v := range vec {
		if v&1 == 0 {
			return false
		}
	}
	return true
}

// sysZeroPage maps one read-only page of zeros: the shared zero page. Writes
// to it fault, as they do to the kernel's zero page.
func sysZeroPage(size int) ([]byte, error) {
	p, err := unix.MmapPtr(-1, 0, nil, uintptr(size), unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("%w: mmap of the zero page: %v", ErrNoMemory, err)
	}
	return unsafe.Slice((*byte)(p), size), nil
}

func sysFreeZeroPage(b []byte) {
	_ = unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(b)), uintptr(len(b)))
}

// backingName says what backs arenas in this build.
const backingName = "mmap"
