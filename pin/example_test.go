package pin_test

import (
	"fmt"
	"log"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/anonfolio/anonfolio/pin"
)

// A buffer pinned for I/O stays coherent with its space across a Fork: what
// the "device" writes through the pin, the space reads, and the snapshot
// does not.
func Example() {
	a, err := folio.NewArena(folio.Config{Size: 16 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	s, _ := cow.NewSpace(a, cow.Options{})
	defer s.Close()
	addr, _ := s.Map(1<<20, cow.ProtRead|cow.ProtWrite)
	s.WriteAt([]byte("before"), int64(addr))

	p, err := pin.Pin(s, addr, 64<<10, pin.Write) // FOLL_PIN: the pages are exclusive to s
	if err != nil {
		log.Fatal(err)
	}
	defer p.Release()
	buf := p.Bytes()[0] // the backing memory
	snap, _ := s.Fork() // the pinned pages are copied for the child
	defer snap.Close()

	copy(buf, "device") // a DMA into the buffer
	got := make([]byte, 6)
	s.ReadAt(got, int64(addr))
	fmt.Printf("space: %s\n", got)
	snap.ReadAt(got, int64(addr))
	fmt.Printf("snapshot: %s\n", got)
	// Output:
	// space: device
	// snapshot: before
}
