package cow_test

import (
	"fmt"
	"log"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
)

// A snapshot with Fork: the parent goes on writing, the child keeps what
// was there at the Fork.
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

	addr, err := s.Map(16<<20, cow.ProtRead|cow.ProtWrite)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := s.WriteAt([]byte("hello"), int64(addr)); err != nil {
		log.Fatal(err)
	}
	snap, err := s.Fork() // a COW snapshot, in microseconds
	if err != nil {
		log.Fatal(err)
	}
	defer snap.Close()
	if _, err := s.WriteAt([]byte("HELLO"), int64(addr)); err != nil { // the parent goes on writing
		log.Fatal(err)
	}

	buf := make([]byte, 5)
	if _, err := snap.ReadAt(buf, int64(addr)); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("snapshot %q, ", buf)
	if _, err := s.ReadAt(buf, int64(addr)); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("parent %q\n", buf)
	// Output: snapshot "hello", parent "HELLO"
}

// Snapshot a structure and keep writing: a goroutine streams the snapshot
// out (to a file, a socket) with ReadAt while the program goes on updating
// the space through an Accessor. Each write lands wholly before or after
// the Fork, and the snapshot sees none made after it.
func Example_snapshotWhileWriting() {
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
	const counters = 1 << 16 // 512 KiB of 8-byte counters
	base, err := s.Map(counters*8, cow.ProtRead|cow.ProtWrite)
	if err != nil {
		log.Fatal(err)
	}
	acc := s.NewAccessor() // one per goroutine
	defer acc.Close()
	for i := range cow.Addr(counters) {
		if err := acc.StoreUint64(base+8*i, 1); err != nil {
			log.Fatal(err)
		}
	}

	snap, err := s.Fork()
	if err != nil {
		log.Fatal(err)
	}
	saved := make(chan uint64)
	go func() { // the background save: sums what the snapshot holds
		defer snap.Close()
		r := snap.NewAccessor()
		defer r.Close()
		var sum uint64
		for i := range cow.Addr(counters) {
			v, err := r.LoadUint64(base + 8*i)
			if err != nil {
				log.Fatal(err)
			}
			sum += v
		}
		saved <- sum
	}()
	for i := range cow.Addr(counters) { // meanwhile, every counter goes up
		if _, err := acc.AddUint64(base+8*i, 1); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("the snapshot sums to", <-saved)
	v, err := acc.LoadUint64(base)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("the space's first counter:", v)
	// Output:
	// the snapshot sums to 65536
	// the space's first counter: 2
}
