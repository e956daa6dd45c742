package snapshot

import (
	"bytes"
	"encoding/binary"
	"sync/atomic"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/internal/testhook"
)

// TestLocklessWriteDuringSaveFork: a lockless store that found its page
// writable (and so marked) and has not written yet when a delta Save's Fork
// begins is waited for: it lands before the image's instant, in the image,
// and the page is write-protected and unmarked after it, so that the next
// store faults and marks it for the next delta.
func TestLocklessWriteDuringSaveFork(t *testing.T) {
	f := newWrittenFixture(t)
	p := f.a + 3*4096
	acc := f.s.NewAccessor()
	defer acc.Close()
	must(t, acc.StoreUint64(p, 1)) // faults: the page is writable and marked
	f.delta(t, []cow.Addr{p})
	must(t, acc.StoreUint64(p, 2)) // faults again: the Save write-protected it
	f.delta(t, []cow.Addr{p})
	must(t, acc.StoreUint64(p, 3))

	var armed atomic.Bool
	paused, resume := make(chan struct{}), make(chan struct{})
	defer testhook.Set(testhook.LocklessAfterRecheck, func() {
		if armed.CompareAndSwap(true, false) {
			close(paused)
			<-resume
		}
	})()
	quiescing := make(chan struct{})
	var once atomic.Bool
	defer testhook.Set(testhook.Quiescing, func() {
		if once.CompareAndSwap(false, true) {
			close(quiescing)
		}
	})()

	armed.Store(true)
	stored := make(chan error)
	go func() { stored <- acc.StoreUint64(p, 4) }() // lockless: the page is writable
	<-paused
	var img bytes.Buffer
	saved := make(chan error)
	go func() {
		_, err := Save(&img, f.s, Options{Delta: true})
		saved <- err
	}()
	<-quiescing // the Save's Fork waits for the store in flight
	close(resume)
	must(t, <-stored)
	must(t, <-saved)
	if got := imagePages(t, img.Bytes()); len(got) != 1 || got[0] != p {
		t.Fatalf("the delta holds %#x, want the stored page", got)
	}
	load(t, img.Bytes(), f.replica)
	var b [8]byte
	if _, err := f.replica.ReadAt(b[:], int64(p)); err != nil || binary.NativeEndian.Uint64(b[:]) != 4 {
		t.Fatalf("the replica reads %d, %v: the store in flight is not in the image", binary.NativeEndian.Uint64(b[:]), err)
	}
	if m, _ := f.s.Pagemap(p); m.Writable || m.Written {
		t.Fatalf("after the Save the page is %+v: the next store would not be seen", m)
	}
	must(t, acc.StoreUint64(p, 5))
	f.delta(t, []cow.Addr{p})
}
