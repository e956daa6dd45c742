package slab_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/anonfolio/anonfolio/slab"
)

// An allocator lives in its space: a Fork carries its blocks along, and
// Open finds it in the child, where parent and child then go their own
// ways.
func Example() {
	a, err := folio.NewArena(folio.Config{Size: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	s, err := cow.NewSpace(a, cow.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	h, err := slab.New(s, slab.Options{})
	if err != nil {
		log.Fatal(err)
	}
	p, err := h.Alloc(100)
	if err != nil {
		log.Fatal(err)
	}
	size, err := h.Size(p)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := s.WriteAt([]byte("hello, slab"), int64(p)); err != nil {
		log.Fatal(err)
	}

	child, err := s.Fork()
	if err != nil {
		log.Fatal(err)
	}
	defer child.Close()
	hc, err := slab.Open(child, h.Root())
	if err != nil {
		log.Fatal(err)
	}
	if err := hc.Free(p); err != nil { // in the child only
		log.Fatal(err)
	}
	buf := make([]byte, 11)
	if _, err := s.ReadAt(buf, int64(p)); err != nil {
		log.Fatal(err)
	}
	_, err = hc.Size(p)
	fmt.Printf("%d usable bytes; the parent reads %q; freed in the child: %v\n",
		size, buf, errors.Is(err, slab.ErrNotAllocated))

	err = h.Free(p + 8) // an interior pointer: an error, nothing changes
	fmt.Println(errors.Is(err, slab.ErrNotBlock))
	// Output:
	// 112 usable bytes; the parent reads "hello, slab"; freed in the child: true
	// true
}

// A snapshot taken between Quiesce and its resume has no operation of the
// allocator in flight; hold your own structures still the same way.
func ExampleAllocator_Quiesce() {
	a, err := folio.NewArena(folio.Config{Size: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	s, err := cow.NewSpace(a, cow.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	h, err := slab.New(s, slab.Options{})
	if err != nil {
		log.Fatal(err)
	}

	resume := h.Quiesce()
	snap, err := s.Fork()
	resume()
	if err != nil {
		log.Fatal(err)
	}
	defer snap.Close()
	hs, err := slab.Open(snap, h.Root())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("the snapshot's allocator checks out:", hs.Check() == nil)
	// Output: the snapshot's allocator checks out: true
}
