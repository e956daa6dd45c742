// Package folio is anonfolio's physical memory: an Arena is one mmap
// reservation that the spaces of package cow allocate their pages from, in
// folios of 1 to 2^MaxOrder base pages (4 KiB to 2 MiB with 4 KiB pages).
//
// Most programs make one arena and never touch it again except to read its
// Stats and Close it:
//
//	a, err := folio.NewArena(folio.Config{Size: 1 << 30}) // address space only, until used
//	if err != nil {
//		return err
//	}
//	defer a.Close()
//	s, err := cow.NewSpace(a, cow.Options{})
//
// # How large to make it
//
// The reservation costs address space, not memory (MAP_NORESERVE): a space
// uses what it touches. Size it for the live data plus what copy-on-write
// needs while a snapshot is alive: a page written in the parent while a
// Fork still shares it is copied, so a background save of D bytes while
// writers rewrite a fraction f of them needs about (1+f)·D. Memory freed
// goes back to the kernel past Config.RetainFree (Size/16 by default).
// The arena's own cost is its page descriptors, 16 bytes per page (4 MiB
// per GiB of 4 KiB pages), resident as pages are used, and page tables of
// about 2 KiB per MiB a space maps (BenchmarkArenaRSS; USING.md has the
// figures and the command).
//
// # Out of memory
//
// When no folio of any order is free, the operation that needed one fails
// with ErrNoMemory, wrapped with the order asked, the address and what
// holds the arena's memory; nothing is corrupted. Closing snapshots (their
// copies), releasing pins, unmapping regions, or SplitDeferred (which frees
// the unmapped parts of large folios) makes room. A fault that finds the
// arena empty runs SplitDeferred once by itself before it gives up.
//
// # Debugging
//
// The anonfolio_debug build tag quarantines memory that pins handed out when
// it is freed (see package pin). Race builds (-race) back the arena with a
// Go allocation instead of mmap, so that the race detector sees the pages.
package folio
