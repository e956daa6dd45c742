package folio_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
)

// An arena is sized in address space, not memory: nothing is resident
// until a space writes. It prints as one line.
func ExampleNewArena() {
	a, err := folio.NewArena(folio.Config{Size: 64 << 20, PageSize: 4096})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	fmt.Println(a)
	fmt.Println(a.Geometry())
	// Output:
	// folio.Arena(64 MiB of 4 KiB pages, folios up to 2 MiB: 64 MiB free, spaces: 0)
	// page 4KiB, max folio 2MiB (order 9), PMD 2MiB (order 9), contpte 16×4KiB = 64KiB
}

// What to do on ErrNoMemory: the write that needed a page fails, wrapped
// with the order, the address and what holds the arena's memory; nothing
// is corrupted. Give memory back (close a snapshot, release a pin, unmap,
// DontNeed) and try again.
func Example_outOfMemory() {
	a, err := folio.NewArena(folio.Config{Size: 4 << 20, PageSize: 4096})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	s, err := cow.NewSpace(a, cow.Options{Orders: cow.Orders()}) // 4 KiB folios only
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	addr, err := s.Map(8<<20, cow.ProtRead|cow.ProtWrite) // twice the arena: mapping is free
	if err != nil {
		log.Fatal(err)
	}
	page := int64(a.PageSize())
	var off int64
	for ; off < 8<<20; off += page {
		if _, err = s.WriteAt([]byte{1}, int64(addr)+off); err != nil {
			break
		}
	}
	fmt.Printf("wrote %d MiB, then ErrNoMemory: %v\n", off>>20, errors.Is(err, folio.ErrNoMemory))

	if err := s.Advise(addr, 1<<20, cow.DontNeed); err != nil { // give 1 MiB back
		log.Fatal(err)
	}
	_, err = s.WriteAt([]byte{1}, int64(addr)+off)
	fmt.Println("after DontNeed the write succeeds:", err == nil)
	// Output:
	// wrote 4 MiB, then ErrNoMemory: true
	// after DontNeed the write succeeds: true
}

// When to call SplitDeferred: a large folio that is only partly unmapped
// keeps all its pages until it is split. The split runs by itself when the
// arena runs out; call it to get the memory back now.
func Example_splitDeferred() {
	a, err := folio.NewArena(folio.Config{Size: 16 << 20, PageSize: 4096})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	s, err := cow.NewSpace(a, cow.Options{}) // the default orders: 2 MiB folios where they fit
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	addr, err := s.Map(2<<20, cow.ProtRead|cow.ProtWrite)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := s.WriteAt(make([]byte, 2<<20), int64(addr)); err != nil { // one 2 MiB folio
		log.Fatal(err)
	}
	free := a.Stats().FreePages
	if err := s.Advise(addr+1<<20, 1<<20, cow.DontNeed); err != nil { // drop its second half
		log.Fatal(err)
	}
	fmt.Println("pages freed by the DontNeed:", a.Stats().FreePages-free)
	fmt.Println("pages freed by SplitDeferred:", cow.SplitDeferred(a))
	fmt.Println("resident:", s.Stats().Resident, "pages")
	// Output:
	// pages freed by the DontNeed: 0
	// pages freed by SplitDeferred: 256
	// resident: 256 pages
}
