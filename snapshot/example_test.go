package snapshot_test

import (
	"bytes"
	"fmt"
	"log"
	"sync"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/anonfolio/anonfolio/snapshot"
)

// A full image, then a delta, each loaded into a replica: the replica
// follows the source, and the delta holds only the page written between.
func Example() {
	a, err := folio.NewArena(folio.Config{Size: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	src, err := cow.NewSpace(a, cow.Options{Orders: cow.Orders()})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	addr, err := src.Map(4<<20, cow.ProtRead|cow.ProtWrite)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := src.WriteAt(bytes.Repeat([]byte("data"), 1<<20), int64(addr)); err != nil { // 4 MiB written
		log.Fatal(err)
	}

	var full, delta bytes.Buffer // any io.Writer: a file, a socket
	info, err := snapshot.Save(&full, src, snapshot.Options{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("full image: %d pages\n", info.Pages)

	if _, err := src.WriteAt([]byte("changed"), int64(addr)+8192); err != nil { // one page written since
		log.Fatal(err)
	}
	info, err = snapshot.Save(&delta, src, snapshot.Options{Delta: true})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("delta: %d page\n", info.Pages)

	replica, err := cow.NewSpace(a, cow.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer replica.Close()
	if _, err := snapshot.Load(&full, replica); err != nil {
		log.Fatal(err)
	}
	if _, err := snapshot.Load(&delta, replica); err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := replica.ReadAt(buf, int64(addr)+8192); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("replica reads %q\n", buf)
	// Output:
	// full image: 1024 pages
	// delta: 1 page
	// replica reads "changed"
}

// Quiesce makes the image's instant one where the caller's own structures
// are consistent: the writers that hold the lock are kept out for the
// microseconds of the Fork, and carry on while the image streams.
//
// +checklocksignore
func ExampleOptions_quiesce() {
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
	var mu sync.RWMutex // held for reading by each of the program's updates
	var img bytes.Buffer
	_, err = snapshot.Save(&img, s, snapshot.Options{Quiesce: func() func() {
		mu.Lock()
		return mu.Unlock
	}})
	fmt.Println(err, img.Len() > 0)
	// Output: <nil> true
}
