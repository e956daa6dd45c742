// Package pte is anonfolio's software page table: the PTE encoding, tables
// of entries with their locks, huge directory entries that map a PMD-order
// folio whole, and contiguous-PTE (contpte) blocks exactly as arm64 keeps
// them. It knows what is mapped where, not why: the cow package above it
// decides policy (what to map, when to copy); this package keeps the entries
// consistent and gives lockless readers a view that is never torn.
//
// # Layout
//
//	Table       sparse radix over a 47-bit address space; allocates lazily
//	  Dir       a PMD table: TableEntries slots, each none, a huge entry or a leaf
//	    Leaf    a PTE table: TableEntries entries and their PTL
//
// With 4 KiB pages a leaf maps 2 MiB in 512 entries and a directory 1 GiB;
// with 16 KiB pages 32 MiB and 64 GiB; with 64 KiB pages 512 MiB and 4 TiB.
// A contpte block is ContPTEs entries: 16 (64 KiB) with 4 KiB pages, 128
// (2 MiB) with 16 KiB, 32 (2 MiB) with 64 KiB.
//
// # State model of an entry
//
//	none → present (SetPTEs / Set)
//	present → present with other flags (WrProtect, SetAccessFlags, fold and unfold)
//	present → none (Clear)
//
// A block is folded (Cont on all its entries) only when its entries map
// consecutive pages of one folio from a block-aligned PFN with identical
// permissions. Fold and unfold go through none (break-before-make).
//
// # Lock order
//
//	Table.mu        allocation of the radix and directories (leaf in the order)
//	Dir.mu          the PMD lock: huge entries, leaf install and removal
//	  Leaf.mu       the PTL: the entries of one leaf
//
// Callers hold their space's map lock before any of these and may take
// folio metadata atomics (and the arena lock) inside. Two leaves' PTLs are
// held at once only by fork, source first, and the destination is not yet
// reachable by anyone else.
//
// # Lockless access
//
// Table.Dir, Dir.Huge, Dir.Leaf and Leaf.GetLockless take no lock. A
// lockless reader must treat what it finds as a hint: it grabs a reference
// to the folio and then rechecks the entry (and, for huge entries, the
// directory slot) with SameMapping, undoing the grab if it changed. Leaves
// are detached only when empty, and a detached leaf stays empty, so a stale
// leaf pointer reads none.
package pte
