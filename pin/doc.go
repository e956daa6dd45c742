// Package pin is GUP for anonfolio: Pin (FOLL_PIN) and Get (FOLL_GET) over
// a range of a cow.Space, handing out the backing memory until Release.
//
// # Protocol (mm/gup.c)
//
// The fast path takes no lock. It enters a lockless section of the space
// (which Fork, Close and Check wait for) unless a Fork is write-protecting
// it (wpSeq odd), and walks the table: an entry that is not present, a
// write on a read-only entry, or a pin of a page that is not AnonExclusive
// (or in a leaf shared after a fork) sends it to the slow path. Otherwise it
// grabs the run of pages of one folio the entry starts (a CAS on a non-zero
// refcount; for a pin, the pincount too, before the recheck, as
// try_grab_folio does, so that a split of a huge entry meanwhile sees it),
// rechecks the entry and that its leaf is still the space's (gup_fast's pmd
// recheck), and takes one reference (pin) per page of the run. At the end, if wpSeq moved, a Fork began: every pin it
// took is undone and the slow path does the work. FastOnly returns
// ErrFastFailed instead of going on to the slow path, with nothing held.
//
// The slow path holds the space's map lock for reading, so no Fork runs. It
// looks at each entry under the PTL and faults until the entry allows the
// access: a write fault for Write, an unshare fault (a private copy, or the
// page reused and made exclusive, left read-only) for a read-only pin of a
// page that is not exclusive, a read fault for anything unmapped. Then it
// takes the references and pins under the PTL.
//
// A pinned page is always AnonExclusive, so no COW ever replaces it in the
// space it was pinned from, and a Fork copies it for the child: the pin stays
// coherent with the parent and the child is isolated. The copy is of every
// exclusive page of the pinned folio, not only the pinned page: a 4 KiB pin
// inside a 2 MiB folio makes each Fork copy 2 MiB (BenchmarkForkPinned). If
// you Fork often, pin memory of small folios. A plain reference (Get) is
// not a pin: Fork shares the page, but the reference stops a later write
// fault from reusing it (the page is copied instead), so what the reference
// holds never changes under it, and after a Fork it no longer follows the
// space's writes (see the Get example). Read the space's current bytes with
// ReadAt or a cow.Accessor instead.
//
// Pins of the zero page unshare it first: a private zeroed page is mapped and
// pinned, so later writes through the space are seen through the pin. A
// read-only Get of an unpopulated page gets the shared zero page, which
// must not be written.
//
// # Accounting
//
// A pin of a run of n pages of one folio takes its n references and n pins
// with one CAS and one add at the grab, and its release gives them back
// with two adds: the floor a pin cannot go below. A Pages value reused for
// one range after another (the methods Pin and Get, in the spirit of
// runtime.Pinner) allocates nothing.
//
// Race and invariants builds (go test -race, go test -tags invariants) also
// count every pin and plain reference in the arena's ledger and register
// the live Pages, so that cow.Check verifies refcounts exactly, and that every pinned page is AnonExclusive, that each folio's
// pincount and plain references are exactly those of the live Pages, and
// that each pinned page is mapped through a leaf that carries the
// maybe-pinned hint and is shared by no other space. A Release there drops
// the counts inside the arena's ledger gate, which Check freezes, so Check
// may run while pins come and go. The default build leaves the ledger and
// the gate out of the pin path: they would take three atomics more than
// the pin itself, for a check only tests run. Its cow.Check still finds a
// folio whose references are fewer than its mappings and pins, and
// folio.Arena.Close still refuses, naming the pins, while any is held.
// References to the zero page are always counted.
//
// # Debugging a use after Release
//
// A Bytes slice kept after Release points at memory the pin no longer
// holds: once the space unmaps the page it is freed, and the next folio
// allocated there belongs to someone else. Build with the anonfolio_debug
// tag (go test -tags anonfolio_debug) to quarantine the memory pins and
// Gets handed out when it is freed, like the kernel's debug_pagealloc: the
// pages are made inaccessible (mprotect PROT_NONE) until reused, so a stale
// write faults at the culprit. Where a page cannot be protected on its own
// (race builds back the arena with the Go heap) it is poisoned instead, and
// the write is reported, naming the page, when it leaves the quarantine.
// A stale write to a page its space still maps is not caught: it lands in
// that space, as a stale pointer would.
package pin
