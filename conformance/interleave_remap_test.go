package conformance

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/internal/interleave"
	"github.com/anonfolio/anonfolio/pin"
)

// TestInterleavingsPinRemap is the pair "pin × Remap" on the pinned pages
// themselves: TestInterleavings' splitter remaps one page of the half of
// the slot the pinner never pins, so a pin never races the move of its own
// entry, and its hints stay set for good once a pin set them. Here a leaf
// of small folios moves to a spare slot and back while a page of it is
// pinned and released; each pin is held across a Fork, and the child must
// not see what is written through the pin after it (the pinned page's leaf
// must carry the maybe-pinned hint wherever Remap put it). A Fork with
// nothing pinned after each pin clears the hint, which is sticky, so that
// every pin has to set it anew.
//
// Before the fix to moveLeafRange this failed in 4 of 5 runs of
//
//	go test -run TestInterleavingsPinRemap ./conformance -args -interleave.time=10s
//
// (2 of 3 with -race); at the default 300 ms it rarely does.
func TestInterleavingsPinRemap(t *testing.T) {
	w := newWorld(t, cow.Options{Orders: cow.Orders()}) // a leaf, not a huge entry
	const size = 2 << 20
	home, spare := w.region(size), w.region(size)
	if err := w.s.Unmap(spare, size); err != nil {
		t.Fatal(err)
	}
	interleave.Run(t, 0, 1, w.withCheck(
		interleave.Op{Name: "Pin+Fork", Step: func(*rand.Rand) error {
			// The last page: the move clears its entry last, and it is the
			// one page that stays exclusive and writable across the steps
			// (each Fork made the others shared), so the fast path can pin
			// it while a Remap is preempted mid-move.
			err := pinForkStep(w, home, spare, size-cow.Addr(w.ps))
			if err != nil {
				return err
			}
			// A Fork with nothing pinned clears the sticky hint of the leaves
			// it shares: the next pin must set it again, racing the move.
			c0, err := w.fork(w.s)
			if err != nil {
				return err
			}
			w.close(c0)
			return nil
		}},
		interleave.Op{Name: "Remap", Step: func(*rand.Rand) error {
			// No yield: the move must be preempted inside, at random.
			if err := w.s.Remap(home, size, spare); err != nil {
				return err
			}
			return w.s.Remap(spare, size, home)
		}})...)
	if err := w.check(nil); err != nil {
		t.Fatal(err)
	}
}

// pinForkStep pins the page at off of the range (home, or spare while a
// Remap has it there), forks, writes through the pin, and checks that the
// child does not see it wherever the page was at the Fork.
func pinForkStep(w *world, home, spare, off cow.Addr) error {
	p, err := pin.Pin(w.s, home+off, 8, pin.Write) // fast first; slow after a Fork shared the page
	if errors.Is(err, cow.ErrFault) {
		return nil // the range is away
	}
	if err != nil {
		return err
	}
	defer p.Release()
	c, err := w.fork(w.s)
	if err != nil {
		return err
	}
	defer w.close(c)
	token := w.next()
	binary.LittleEndian.PutUint64(p.Bytes()[0], token)
	for _, at := range []cow.Addr{home + off, spare + off} {
		if got, err := w.read8(c, at); err == nil && got == token {
			return fmt.Errorf("isolation at %#x: the child reads %d, written through a pin after the Fork", uint64(at), got)
		}
	}
	return nil
}
