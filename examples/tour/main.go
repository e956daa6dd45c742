// Command tour shows anonfolio at work, bottom to top: an arena of naturally
// aligned folios, page tables with contiguous-PTE blocks and huge entries,
// an address space that takes a copy-on-write snapshot of its memory in
// microseconds, timed against the kernel's fork() of this process with the
// same memory resident, and a pinned I/O buffer that stays coherent with its
// space across a snapshot.
//
//	go run ./examples/tour
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"time"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/anonfolio/anonfolio/internal/kernel"
	"github.com/anonfolio/anonfolio/pin"
)

func main() {
	size := flag.Int64("size", 256<<20, "bytes of memory the snapshot part fills (a multiple of the page size)")
	pageSize := flag.Int("page", 0, "base page size (0: the host's)")
	flag.Parse()
	fmt.Println(folio.HostPlatform())
	if err := folios(*pageSize); err != nil {
		log.Fatal(err)
	}
	if err := snapshot(*size, *pageSize); err != nil {
		log.Fatal(err)
	}
	if err := pinned(*pageSize); err != nil {
		log.Fatal(err)
	}
}

// folios shows the two lower layers through Pagemap: the folios of each
// order a write fault allocates, a contpte block unfolded by one read-only
// page and refolded when it is writable again, and a huge entry split into
// folded blocks by a DontNeed of one page.
func folios(pageSize int) error {
	s, done, err := newSpace(64<<20, pageSize)
	if err != nil {
		return err
	}
	defer done()
	g := s.Arena().Geometry()
	ps := g.PageSize
	fmt.Printf("\n== folios and page tables: %s\n\n", g)

	show := func(what string, addr cow.Addr) {
		m, _ := s.Pagemap(addr)
		fmt.Printf("%-52s pfn %#6x  order %d  huge %-5v contpte %-5v writable %v\n", what, m.PFN, m.Order, m.Huge, m.Cont, m.Writable)
	}
	// A PMD-sized region faults one huge folio; a region of one contpte
	// block faults a folio of the contpte order; a single page, order 0.
	huge, err := s.Map(g.FolioSize(g.PMDOrder), cow.ProtRead|cow.ProtWrite)
	if err != nil {
		return err
	}
	block, err := s.Map(g.FolioSize(g.ContOrder), cow.ProtRead|cow.ProtWrite)
	if err != nil {
		return err
	}
	small, err := s.Map(ps, cow.ProtRead|cow.ProtWrite)
	if err != nil {
		return err
	}
	for _, addr := range []cow.Addr{huge, block, small} {
		if _, err := s.WriteAt([]byte("x"), int64(addr)); err != nil {
			return err
		}
	}
	show("a write in a PMD-sized region:", huge)
	show(fmt.Sprintf("a write in a %d KiB region:", g.FolioSize(g.ContOrder)>>10), block)
	show("a write in a one-page region:", small)

	if err := s.Protect(block+3*cow.Addr(ps), ps, cow.ProtRead); err != nil {
		return err
	}
	show("one page of the block made read-only (page 4):", block+4*cow.Addr(ps))
	if err := s.Protect(block+3*cow.Addr(ps), ps, cow.ProtRead|cow.ProtWrite); err != nil {
		return err
	}
	show("writable again, the block refolds (page 4):", block+4*cow.Addr(ps))

	if err := s.Advise(huge+cow.Addr(g.FolioSize(g.PMDOrder)/2), ps, cow.DontNeed); err != nil {
		return err
	}
	show("a DontNeed of one page splits the huge entry:", huge)
	st := s.Stats()
	fmt.Printf("%d large folio(s) queued for the deferred split; SplitDeferred freed %d page(s)\n",
		sum(st.SplitDeferred[:]), s.SplitDeferred())
	return cow.Check(s)
}

func sum(v []uint64) (n uint64) {
	for _, x := range v {
		n += x
	}
	return n
}

// snapshot fills a space, forks it, goes on writing in the parent while the
// child still reads the snapshot, and times the fork against the kernel's.
func snapshot(size int64, pageSize int) error {
	s, done, err := newSpace(2*size+64<<20, pageSize)
	if err != nil {
		return err
	}
	defer done()
	fmt.Printf("\n== a snapshot of %d MiB (folio orders %v)\n\n", size>>20, s.Options().Orders)

	addr, err := s.Map(int(size), cow.ProtRead|cow.ProtWrite)
	if err != nil {
		return err
	}
	chunk := bytes.Repeat([]byte{'a'}, 1<<20)
	start := time.Now()
	for off := int64(0); off < size; off += int64(len(chunk)) {
		if _, err := s.WriteAt(chunk[:min(int64(len(chunk)), size-off)], int64(addr)+off); err != nil {
			return err
		}
	}
	fill := time.Since(start)
	st := s.Stats()
	fmt.Printf("filled in %v (%.1f GiB/s, including the kernel's first touch of the arena; folio.Config.Populate pays it up front); faults by order: %v\n",
		fill.Round(time.Millisecond), float64(size)/fill.Seconds()/(1<<30), nonZero(st.FaultAlloc[:]))

	start = time.Now()
	snap, err := s.Fork()
	took := time.Since(start)
	if err != nil {
		return err
	}
	defer snap.Close()
	fmt.Printf("Fork: %v (PTE leaves shared with the child: %d; huge entries are copied, O(1) each)\n",
		took.Round(time.Microsecond), s.Stats().LeafShares)
	if m, err := kernel.Map(int(size), false); err == nil {
		m.Touch()
		if d, err := kernel.Fork(); err == nil {
			fmt.Printf("the kernel's fork() of this process with %d MiB resident in 4 KiB pages: %v (%.0fx)\n",
				size>>20, d.Round(time.Microsecond), float64(d)/float64(took))
		}
		m.Unmap()
	}

	// The parent goes on writing; the snapshot keeps what was there.
	for off := int64(0); off < size; off += 64 << 10 {
		if _, err := s.WriteAt([]byte("PARENT"), int64(addr)+off); err != nil {
			return err
		}
	}
	got := make([]byte, 6)
	snap.ReadAt(got, int64(addr))
	fmt.Printf("after the parent overwrote every 64 KiB: the snapshot reads %q, the parent ", got)
	s.ReadAt(got, int64(addr))
	fmt.Printf("%q\n", got)
	ps := s.Stats()
	fmt.Printf("the parent copied %d pages (%d KiB) and took %d page-table copies; the snapshot copied none\n",
		ps.WPCopy, ps.CopyBytes>>10, ps.LeafUnshares)
	return cow.Check(s, snap)
}

// newSpace returns a space with the default options over a new arena of
// size bytes, and the function that closes both.
func newSpace(size int64, pageSize int) (*cow.Space, func(), error) {
	a, err := folio.NewArena(folio.Config{Size: size, PageSize: pageSize})
	if err != nil {
		return nil, nil, err
	}
	s, err := cow.NewSpace(a, cow.Options{})
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	return s, func() { s.Close(); a.Close() }, nil
}

func nonZero(v []uint64) map[int]uint64 {
	m := map[int]uint64{}
	for o, n := range v {
		if n != 0 {
			m[o] = n
		}
	}
	return m
}

// pinned pins a 64 KiB buffer for "I/O", forks, and shows that writes
// through the pin reach the parent and not the snapshot, and the parent's
// reach the pin: the pinned pages were copied for the child at the fork.
func pinned(pageSize int) error {
	s, done, err := newSpace(16<<20, pageSize)
	if err != nil {
		return err
	}
	defer done()
	const size = 64 << 10
	fmt.Printf("\n== a pinned %d KiB I/O buffer across a snapshot\n\n", size>>10)
	addr, err := s.Map(2<<20, cow.ProtRead|cow.ProtWrite)
	if err != nil {
		return err
	}
	if _, err := s.WriteAt(bytes.Repeat([]byte{'.'}, size), int64(addr)); err != nil {
		return err
	}
	const rounds = 100000
	start := time.Now()
	for range rounds {
		p, err := pin.Pin(s, addr, size, pin.Write|pin.FastOnly)
		if err != nil {
			return err
		}
		p.Release()
	}
	fmt.Printf("Pin+Release of the buffer by GUP-fast: %v each\n", (time.Since(start) / rounds).Round(time.Nanosecond))

	p, err := pin.Pin(s, addr, size, pin.Write|pin.Longterm)
	if err != nil {
		return err
	}
	defer p.Release()
	snap, err := s.Fork()
	if err != nil {
		return err
	}
	defer snap.Close()
	copy(p.Bytes()[0], "DMA")                 // the device writes the buffer
	s.WriteAt([]byte("cpu"), int64(addr)+100) // the program writes it too
	got := make([]byte, 3)
	s.ReadAt(got, int64(addr))
	fmt.Printf("the parent reads the device's write: %q; ", got)
	snap.ReadAt(got, int64(addr))
	fmt.Printf("the snapshot does not: %q; ", got)
	fmt.Printf("the pin sees the parent's write: %q\n", p.Bytes()[0][100:103])
	// As in the kernel, the pin is counted per folio: every exclusive page
	// of a pinned folio is copied for the child, the rest is shared.
	fmt.Printf("Fork copied for the child the %d pages of the pinned folio (ForkCopies) and shared the rest\n", s.Stats().ForkCopies)
	return cow.Check(s, snap)
}
