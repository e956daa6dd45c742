package cow

import (
	"errors"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/internal/testhook"
)

// TestView: a write view's bytes are the space's writes, a read view sees
// the space's bytes, the pieces cover exactly the range in address order,
// one per physically contiguous run (a huge folio is one piece), and the
// errors are ReadAt's and WriteAt's, or fn's own.
func TestView(t *testing.T) {
	e := newEnv(t, 32<<20)
	g := e.a.Geometry()
	huge := e.space(Orders(g.PMDOrder))
	small := e.space(Orders())
	for _, s := range []*Space{huge, small} {
		addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
		acc := s.NewAccessor()
		var pieces []int
		err := acc.View(addr+100, 3*4096, true, func(p []byte) error {
			pieces = append(pieces, len(p))
			for i := range p {
				p[i] = 'v'
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, n := range pieces {
			total += n
		}
		if total != 3*4096 || s == huge && len(pieces) != 1 {
			t.Fatalf("pieces %v: want 3 pages' worth, one piece in a huge folio", pieces)
		}
		expect(t, s, addr+100, fill('v', 3*4096))
		expect(t, s, addr+99, []byte{0})
		var seen []byte
		if err := acc.View(addr+100, 3*4096, false, func(p []byte) error { seen = append(seen, p...); return nil }); err != nil {
			t.Fatal(err)
		}
		if string(seen) != string(fill('v', 3*4096)) {
			t.Fatal("a read view does not see the bytes")
		}
		boom := errors.New("boom")
		if err := acc.View(addr, 8, false, func([]byte) error { return boom }); err != boom {
			t.Fatalf("fn's error: %v", err)
		}
		wantErr(t, acc.View(addr+2<<20, 8, false, func([]byte) error { return nil }), ErrFault, "a view of nothing")
		if err := s.Protect(addr, 2<<20, ProtRead); err != nil {
			t.Fatal(err)
		}
		wantErr(t, acc.View(addr, 8, true, func([]byte) error { return nil }), ErrProtection, "a write view of a read-only range")
		acc.Close()
	}
}

// TestForkWaitsForView: a Fork waits for a write view in progress, so
// that the view's writes land wholly before the snapshot.
func TestForkWaitsForView(t *testing.T) {
	e := newEnv(t, 16<<20)
	s := e.space(Orders())
	addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
	write(t, s, addr, fill('o', 4096))
	acc := s.NewAccessor()
	defer acc.Close()
	quiescing := make(chan struct{}, 1)
	t.Cleanup(testhook.Set(testhook.Quiescing, func() {
		select {
		case quiescing <- struct{}{}:
		default:
		}
	}))
	forked := make(chan *Space)
	err := acc.View(addr, 8, true, func(p []byte) error {
		copy(p, "half")
		go func() { c, _ := s.Fork(); forked <- c }()
		<-quiescing // the Fork is waiting for this view
		select {
		case <-forked:
			t.Error("Fork returned while a write view was in progress")
		case <-time.After(50 * time.Millisecond):
		}
		copy(p[4:], "done")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c := <-forked
	e.spaces = append(e.spaces, c)
	expect(t, c, addr, []byte("halfdone"))
}
