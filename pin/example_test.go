package pin_test

import (
	"fmt"
	"log"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/anonfolio/anonfolio/pin"
)

// Pin for I/O: a buffer pinned for a device stays coherent with its space
// across a Fork. What the "device" writes through the pin, the space
// reads, and the snapshot does not.
func Example() {
	a, err := folio.NewArena(folio.Config{Size: 16 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	s, err := cow.NewSpace(a, cow.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	addr, err := s.Map(1<<20, cow.ProtRead|cow.ProtWrite)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := s.WriteAt([]byte("before"), int64(addr)); err != nil {
		log.Fatal(err)
	}

	p, err := pin.Pin(s, addr, 64<<10, pin.Write) // FOLL_PIN: the pages are exclusive to s
	if err != nil {
		log.Fatal(err)
	}
	defer p.Release()
	buf := p.Bytes()[0]   // the backing memory
	snap, err := s.Fork() // the pinned pages are copied for the child
	if err != nil {
		log.Fatal(err)
	}
	defer snap.Close()

	copy(buf, "device") // a DMA into the buffer
	got := make([]byte, 6)
	if _, err := s.ReadAt(got, int64(addr)); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("space: %s\n", got)
	if _, err := snap.ReadAt(got, int64(addr)); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("snapshot: %s\n", got)
	// Output:
	// space: device
	// snapshot: before
}

// A Get (FOLL_GET) is a reference, not a pin: after a Fork, the space's
// next write to the page copies it, so the Get's bytes keep what was there
// and no longer follow the space. Take a Pin to follow the space, or read
// it through ReadAt, an Accessor or a View, which look the page up each
// time.
func ExampleGet() {
	a, err := folio.NewArena(folio.Config{Size: 16 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	s, err := cow.NewSpace(a, cow.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	addr, err := s.Map(1<<20, cow.ProtRead|cow.ProtWrite)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := s.WriteAt([]byte("v1"), int64(addr)); err != nil {
		log.Fatal(err)
	}
	g, err := pin.Get(s, addr, s.PageSize(), 0)
	if err != nil {
		log.Fatal(err)
	}
	defer g.Release()
	view := g.Bytes()[0]

	if _, err := s.WriteAt([]byte("v2"), int64(addr)); err != nil { // no Fork yet: the page is written in place
		log.Fatal(err)
	}
	fmt.Printf("before a Fork, the Get reads %s\n", view[:2])

	snap, err := s.Fork()
	if err != nil {
		log.Fatal(err)
	}
	defer snap.Close()
	if _, err := s.WriteAt([]byte("v3"), int64(addr)); err != nil { // copies the page: the Get holds the old one
		log.Fatal(err)
	}
	acc := s.NewAccessor()
	defer acc.Close()
	now := make([]byte, 2)
	if _, err := acc.ReadAt(now, int64(addr)); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("after it, the Get reads %s, the space %s\n", view[:2], now)
	// Output:
	// before a Fork, the Get reads v2
	// after it, the Get reads v2, the space v3
}
