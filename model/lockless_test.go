package model_test

// The trails of the mutants of the lockless paths: the seqlock read
// (readRun) and the reference-free write (writeRun, the Accessor's stores).
// Three of them are replayed by tests of internal/mm/cow, which this
// package does not repeat:
//
//	NO_SEQ_RECHECK, NO_CLEAR_FLUSH (zapread)  TestSeqlockReadOfReusedPage
//	NO_GRACE_PERIOD (zapwrite)                TestZapWaitsForLocklessWriter
//	NO_SEQ_RECHECK (drop, too)                TestDropSharedLeafStaleLocklessRead
//
// NO_WRITE_RECHECK is the code as it is (model/README.md): its trail needs
// a writer stopped between its translation and its entry read, where no
// test hook is yet.

import (
	"encoding/binary"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
)

// TestTrailSharedLeafWrite (NO_SHARED_CHECK, scenario zapwrite): on-demand
// fork shares the parent's leaf with the child without write-protecting
// its entries, so they still read writable. A lockless write through the
// leaf must refuse (a shared leaf is read-only to every user, whatever its
// entries say) and fault, which gives the parent a copy of the leaf and of
// the page: written through the entry, it would land in the page the child
// maps. Through WriteAt, an Accessor's WriteAt and StoreUint64, with the
// Accessor's slot translated before the Fork.
func TestTrailSharedLeafWrite(t *testing.T) {
	writes := map[string]func(s *cow.Space, acc *cow.Accessor, addr cow.Addr) error{
		"Space.WriteAt": func(s *cow.Space, _ *cow.Accessor, addr cow.Addr) error {
			_, err := s.WriteAt([]byte("parent!!"), int64(addr))
			return err
		},
		"Accessor.WriteAt": func(_ *cow.Space, acc *cow.Accessor, addr cow.Addr) error {
			_, err := acc.WriteAt([]byte("parent!!"), int64(addr))
			return err
		},
		"Accessor.StoreUint64": func(_ *cow.Space, acc *cow.Accessor, addr cow.Addr) error {
			return acc.StoreUint64(addr, binary.NativeEndian.Uint64([]byte("parent!!")))
		},
	}
	for name, write := range writes {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			s, addr := e.space(cow.Orders(), 's')
			acc := s.NewAccessor()
			defer acc.Close()
			if _, err := acc.LoadUint64(addr); err != nil { // translate the slot
				t.Fatal(err)
			}
			c := e.fork(s)
			if err := write(s, acc, addr); err != nil {
				t.Fatal(err)
			}
			if got := e.read(c, addr, 8); string(got) != "ssssssss" {
				t.Errorf("the child reads %q: the parent's write went through the shared leaf", got)
			}
			if got := e.read(s, addr, 8); string(got) != "parent!!" {
				t.Errorf("the parent reads %q, want its write", got)
			}
		})
	}
}
