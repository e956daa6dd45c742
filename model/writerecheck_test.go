package model_test

import (
	"encoding/binary"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/internal/testhook"
)

// TestTrailWriteRecheck (NO_WRITE_RECHECK, scenario zapwrite): a lockless
// write in the parent has translated its slot to the leaf the parent
// shares with the child (on-demand fork) and has not yet read the entry.
// Meanwhile another write of the parent takes its private copy of the leaf
// (unshareLeaf: the shared leaf is now the child's alone), and the child's
// write copies its page into that leaf, writable. The first write then
// finds the leaf no longer shared and the entry writable: it must see that
// the translation's generation moved (the leaf left the parent's slot) and
// fault, not write the child's page. Through WriteAt, an Accessor's
// StoreUint64 and a writable View.
func TestTrailWriteRecheck(t *testing.T) {
	writes := map[string]func(s *cow.Space, acc *cow.Accessor, addr cow.Addr) error{
		"Space.WriteAt": func(s *cow.Space, _ *cow.Accessor, addr cow.Addr) error {
			_, err := s.WriteAt([]byte("parent!!"), int64(addr))
			return err
		},
		"Accessor.StoreUint64": func(_ *cow.Space, acc *cow.Accessor, addr cow.Addr) error {
			return acc.StoreUint64(addr, binary.NativeEndian.Uint64([]byte("parent!!")))
		},
		// The same with the translation already cached (a TLB hit: the
		// fast path, not the refill).
		"Accessor.StoreUint64/hit": func(_ *cow.Space, acc *cow.Accessor, addr cow.Addr) error {
			return acc.StoreUint64(addr, binary.NativeEndian.Uint64([]byte("parent!!")))
		},
		"Accessor.View": func(_ *cow.Space, acc *cow.Accessor, addr cow.Addr) error {
			return acc.View(addr, 8, true, func(p []byte) error {
				copy(p, "parent!!")
				return nil
			})
		},
	}
	for name, write := range writes {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			s, addr := e.space(cow.Orders(), 'w')
			acc := s.NewAccessor()
			defer acc.Close()
			c := e.fork(s)
			if name == "Accessor.StoreUint64/hit" {
				if _, err := acc.LoadUint64(addr); err != nil { // fills the TLB: the slot's leaf, shared with c
					t.Fatal(err)
				}
			}
			paused := once(func() {
				goWait(func() { e.write(s, addr+8*page, []byte("unshare")) })
				goWait(func() { e.write(c, addr, []byte("child!!!")) })
			})
			paused.set(t, testhook.LocklessBeforeEntry)
			if err := write(s, acc, addr); err != nil {
				t.Fatal(err)
			}
			paused.mustHaveRun(t, "the write never reached its entry read on the lockless path")
			if got := e.read(c, addr, 8); string(got) != "child!!!" {
				t.Errorf("the child reads %q: the parent's write landed in the child's page", got)
			}
			if got := e.read(s, addr, 8); string(got) != "parent!!" {
				t.Errorf("the parent reads %q, want its write", got)
			}
		})
	}
}
