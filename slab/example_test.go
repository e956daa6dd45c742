package slab_test

import (
	"errors"
	"fmt"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/anonfolio/anonfolio/slab"
)

// An allocator lives in its space: a Fork carries its blocks along, and
// Open finds it in the child, where parent and child then go their own
// ways.
func Example() {
	a, _ := folio.NewArena(folio.Config{Size: 64 << 20})
	defer a.Close()
	s, _ := cow.NewSpace(a, cow.Options{})
	defer s.Close()

	h, err := slab.New(s, slab.Options{})
	if err != nil {
		panic(err)
	}
	p, _ := h.Alloc(100)
	size, _ := h.Size(p)
	s.WriteAt([]byte("hello, slab"), int64(p))

	child, _ := s.Fork()
	defer child.Close()
	hc, err := slab.Open(child, h.Root())
	if err != nil {
		panic(err)
	}
	hc.Free(p) // in the child only
	buf := make([]byte, 11)
	s.ReadAt(buf, int64(p))
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
	a, _ := folio.NewArena(folio.Config{Size: 64 << 20})
	defer a.Close()
	s, _ := cow.NewSpace(a, cow.Options{})
	defer s.Close()
	h, _ := slab.New(s, slab.Options{})

	resume := h.Quiesce()
	snap, err := s.Fork()
	resume()
	if err != nil {
		panic(err)
	}
	defer snap.Close()
	hs, err := slab.Open(snap, h.Root())
	fmt.Println(hs.Check(), err)
	// Output: <nil> <nil>
}
