// Package cow is anonfolio's address space: a Space holds regions of
// anonymous memory, serves loads and stores as a CPU would (ReadAt,
// WriteAt), and takes copy-on-write snapshots of itself in microseconds
// (Fork), whatever its size. It is what Linux gives a process's memory,
// for Go programs, which cannot fork(2).
//
//	s, err := cow.NewSpace(arena, cow.Options{})
//	addr, err := s.Map(64<<20, cow.ProtRead|cow.ProtWrite)
//	_, err = s.WriteAt(record, int64(addr)) // faults pages in
//	snap, err := s.Fork()                  // a snapshot: s keeps writing, snap keeps what was there
//
// # Snapshots
//
// Fork shares the parent's page-table pages with the child (on-demand
// fork) and takes about as long whatever the size: tens of microseconds. It
// holds the parent's map lock meanwhile, so writers that need a fault wait
// that long; writers already in flight finish first. Afterwards each side
// copies a page the first time it writes it (copy-on-write); the first
// write into each 2 MiB range that a Fork shared also copies that range's
// page-table page. Reads copy nothing. Close the snapshot when done: every
// page it still shares is then the parent's alone again, and writes reuse
// instead of copying.
//
// ResetTo takes a space back to a snapshot of it, at a cost that grows with
// what the space changed since, not with its size: the loop of a snapshot
// fuzzer or of a per-request sandbox (fork once, run, reset, run...).
// Package snapshot saves a space to an io.Writer and loads it back, whole
// or as deltas of the pages written since the previous image; Pagemap's
// Written and Regions show what it works from.
//
// # Concurrency
//
// Every method is safe for concurrent use. A WriteAt lands wholly before or
// wholly after a concurrent Fork for each page it touches (never half in the
// snapshot); ReadAt and WriteAt calls on different bytes never interfere; on
// the same bytes they race as plain memory accesses do (use an Accessor's
// atomic 8-byte operations, or your own lock). Protect and WriteProtect wait
// for accesses in flight.
//
// # Folio orders
//
// A write to an untouched page allocates a folio of the largest enabled
// order (Options.Orders) that fits the region and whose range is still
// empty; large folios make faults rarer and forks cheaper, and waste memory
// when writes are sparse. bench/cmd/orderbench measures which suits a
// workload.
//
// # Checking
//
// Check verifies every invariant over the live spaces of an arena; the
// tests call it after everything, and a program may call it while it runs.
// DESIGN.md describes the machinery, USING.md answers the usual questions
// with figures.
package cow
