package pte

// Batch returns how many entries from i on, at most max, map consecutive
// pages starting with entry i's page and have the same flags, ignoring the
// bits in ignore and Cont (folio_pte_batch). It also returns the OR of all
// the batched entries' flags, so the caller learns whether any was writable,
// dirty or young.
//
// Consecutive PFNs alone do not prove the pages are one folio's: the caller
// bounds max by the end of the folio (and of its range). By default the
// write bit is respected, so that a batch never makes an entry writable that
// was not (the mprotect batching bug fixed by FPB_RESPECT_WRITE); pass Write
// in ignore only where the caller merges it deliberately.
//
// Preconditions: the PTL is held.
// +checklocks:l.mu
func (l *Leaf) Batch(i, max int, ignore PTE) (n int, any PTE) {
	first := l.raw(i)
	ignore |= Cont
	want := first &^ ignore
	any = first
	for n = 1; n < max; n++ {
		e := l.raw(i + n)
		if e&^ignore != want.Advance(n) {
			break
		}
		any |= e
	}
	return n, any.Flags()
}
