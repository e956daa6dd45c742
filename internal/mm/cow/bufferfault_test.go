//go:build unix

package cow

import (
	"fmt"
	"runtime/debug"
	"testing"

	"golang.org/x/sys/unix"
)

// TestBufferFaultEndsSection: ReadAt and WriteAt copy to or from the
// caller's buffer inside a lockless section (a pooled Accessor's for
// Space.ReadAt and WriteAt). A buffer that faults (a truncated file
// mapping, say) panics there in a program that asked for it
// (debug.SetPanicOnFault, as the Go manual advises for mapped files), and
// the program may recover. The section must have ended by then: one left
// open is one that Fork, Close, Protect and every zap of the space wait
// for, forever. Each call runs twice: the first may miss the TLB (the
// general path), the second hits it (the one-page fast path).
func TestBufferFaultEndsSection(t *testing.T) {
	hostPage := unix.Getpagesize()
	bad, err := unix.Mmap(-1, 0, 2*hostPage, unix.PROT_NONE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Skipf("no PROT_NONE mapping for the faulting buffer: %v", err)
	}
	defer unix.Munmap(bad)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))

	const pages = 4
	e := newEnv(t, 16<<20)
	// Not e.space: the env's cleanup would Close it, and with a section
	// left open that Close never returns. It is closed below once no
	// section is open.
	s, err := NewSpace(e.a, Options{Orders: Orders()})
	if err != nil {
		t.Fatal(err)
	}
	ps := int(s.ps)
	addr := mustMap(t, s, pages*ps, ProtRead|ProtWrite)
	write(t, s, addr, fill('x', pages*ps))
	acc := s.NewAccessor()
	defer acc.Close()

	calls := []struct {
		name string
		call func(p []byte) (int, error)
	}{
		{"Space.ReadAt", func(p []byte) (int, error) { return s.ReadAt(p, int64(addr)) }},
		{"Space.WriteAt", func(p []byte) (int, error) { return s.WriteAt(p, int64(addr)) }},
		{"Accessor.ReadAt", func(p []byte) (int, error) { return acc.ReadAt(p, int64(addr)) }},
		{"Accessor.WriteAt", func(p []byte) (int, error) { return acc.WriteAt(p, int64(addr)) }},
	}
	for _, c := range calls {
		for _, n := range []int{64, min(len(bad), 2*ps)} { // within a page; across pages
			for try := range 2 {
				what := fmt.Sprintf("%s of %d bytes (call %d)", c.name, n, try+1)
				if !panics(func() { c.call(bad[:n]) }) {
					t.Fatalf("%s from a PROT_NONE buffer did not fault: the test tests nothing", what)
				}
				if open := openSections(s); open != "" {
					t.Fatalf("%s faulted in the caller's buffer and left %s: Fork, Close and every zap of the space would wait for it forever", what, open)
				}
			}
		}
	}
	// Nothing waits forever, and the Accessor still works.
	e.spaces = append(e.spaces, s)
	e.fork(s)
	if _, err := acc.WriteAt([]byte("after"), int64(addr)); err != nil {
		t.Fatal(err)
	}
	expect(t, s, addr, []byte("after"))
}

// panics reports whether f panicked.
func panics(f func()) (did bool) {
	defer func() { did = recover() != nil }()
	f()
	return false
}

// openSections describes the lockless sections of s's Accessors (pooled
// ones included) that are open now; "" if none.
func openSections(s *Space) string {
	as := &s.accs
	as.mu.Lock()
	defer as.mu.Unlock()
	var open string
	as.each(func(a *Accessor) {
		if a.sec.rd.pub.Load()&1 != 0 {
			open += fmt.Sprintf("a read section (%d) ", a.sec.rd.pub.Load())
		}
		if a.sec.wr.pub.Load()&1 != 0 {
			open += fmt.Sprintf("a write section (%d) ", a.sec.wr.pub.Load())
		}
	})
	if open != "" {
		open += "open"
	}
	return open
}
