package cow

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
)

// TestCheckWhileASpaceIsCreated: Check reads the arena's live spaces once,
// after locking those it was given, and then counts every folio of the
// arena against their tables. A space created after that read (NewSpace in
// another goroutine: nothing holds it off) is neither locked nor counted,
// and the folio its first write allocates is reported as a leak; its
// allocations also run under folio.Arena.Check, which reads the allocator
// without locks. Check is documented as callable while other goroutines
// use the arena.
//
// The other goroutine is started in the window from the one callback Check
// makes there, the source of pinned pages (RegisterPinnedPages), and given
// 200 ms: what a preemption of Check at that point lets it do. A Check that
// holds new spaces off, or refuses the list it was given once a space it
// was not given exists, passes.
func TestCheckWhileASpaceIsCreated(t *testing.T) {
	e := newEnv(t, 16<<20)
	s := e.space(Orders())
	addr := mustMap(t, s, 1<<20, ProtRead|ProtWrite)
	write(t, s, addr, pattern('n', 4096))
	created := make(chan *Space, 1)
	asked := false
	restore := RegisterPinnedPages(func(a *folio.Arena) map[folio.PFN]int {
		if asked {
			return nil
		}
		asked = true
		go func() { // another goroutine of the program
			sp, err := NewSpace(a, Options{Orders: Orders()})
			if err != nil {
				t.Error(err)
				created <- nil
				return
			}
			at, err := sp.Map(1<<20, ProtRead|ProtWrite)
			if err == nil {
				_, err = sp.WriteAt([]byte("a new space's first page"), int64(at))
			}
			if err != nil {
				t.Error(err)
			}
			created <- sp
		}()
		// Check goes on here unless something holds the new space off.
		select {
		case sp := <-created:
			created <- sp
		case <-time.After(200 * time.Millisecond):
		}
		return nil
	})
	err := Check(s)
	restore()
	if !asked {
		t.Fatal("the interleaving did not happen: Check never asked for the pinned pages")
	}
	if late := <-created; late != nil {
		defer late.Close()
	}
	if errors.Is(err, ErrInvalid) && strings.Contains(err.Error(), "was not passed") {
		return // Check noticed the space it was not given: an honest refusal
	}
	if err != nil {
		t.Fatalf("Check while another goroutine created a space and wrote to it: %v", err)
	}
}
