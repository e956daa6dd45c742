// Package snapshot writes point-in-time images of a cow.Space and loads
// them back: full images, incremental ones (deltas: only what changed since
// the previous image), and loads that never half-apply.
//
//	info, err := snapshot.Save(f, s, snapshot.Options{})            // a full image
//	info, err = snapshot.Save(f2, s, snapshot.Options{Delta: true}) // what s changed since
//
//	t, _ := cow.NewSpace(arena, cow.Options{})
//	_, err = snapshot.Load(f, t)  // t is now s as of the first Save
//	_, err = snapshot.Load(f2, t) // and as of the second
//
// # Save
//
// Save takes a Fork of the space (microseconds, whatever its size; see
// cow.Space.Fork) and streams the fork's memory straight to the writer, with
// no copy. Each 2 MiB window (with 4 KiB pages) of the fork is unmapped once
// written (drop-behind), so a later write in the space to a page already
// saved reuses it instead of copying it. The space keeps serving reads and
// writes throughout; the image is of the instant of the Fork.
// Options.Quiesce brackets that instant, so that the caller's own
// structures are consistent in it.
//
// # Deltas
//
// A delta holds the pages the space wrote since its previous successful Save
// (or since the image Load gave it), found as the kernel's soft-dirty
// tracking finds them (/proc/pid/clear_refs, PAGEMAP_SCAN's
// PAGE_IS_WRITTEN): every write marks its page-table entry, and each Save's
// Fork clears the marks, at the snapshot's instant. A page is marked by a
// write through the space (WriteAt, an Accessor, a fault), by a pin.Pin with
// pin.Write for as long as it is held, by Remap (the pages move), and it
// stays marked while a pin holds it. With large folios a contpte block
// (64 KiB) or a huge entry (2 MiB) is marked as a unit, so Info.Pages lies
// between the pages written and the pages of the units holding them; with
// order-0 folios it is exact. A delta also lists the ranges whose contents
// were dropped (Unmap, MapFixed, Advise(DontNeed), Remap), and every region,
// so a region mapped, unmapped, protected, advised or moved since is in it.
//
// A delta names the image it follows, and applies only onto a space in
// exactly that state: loaded from that chain, and not written, unmapped,
// protected or advised since (ErrMismatch otherwise). A Save that fails is
// not a base: the next delta carries everything since the last Save that
// succeeded. A delta Save of a space with no successful Save is ErrNoBase.
// Forks of the space between Saves do not disturb its tracking; a Fork's
// child starts with its parent's base, as does a space after ResetTo (but
// not one made while a Save of its source streams: its base is then the
// image being written, which may never be). A space that drops more than
// 65536 separate ranges between two Saves forgets its base rather than
// keep them all: its next delta is ErrNoBase.
//
// # Load
//
// Load validates the image as it streams it, into a Fork of the target that
// only it can see, and makes that fork the target (cow.Space.ResetTo) only
// once the whole image checked out and the target is still in the state the
// image follows. On any error (ErrCorrupt, ErrMismatch, a short read,
// folio.ErrNoMemory) the target is unchanged.
//
// # The image format (version 1)
//
// All integers are little-endian. An image is a header, records, and an
// end record:
//
//	header (56 bytes)
//	  0  magic      "anonsnap"
//	  8  version    uint16: 1
//	 10  kind       uint8: 0 full, 1 delta
//	 11  reserved   uint8: 0
//	 12  page size  uint32
//	 16  image id   [16]byte, random: names this image
//	 32  base id    [16]byte: the image a delta follows (zero for a full one)
//	 48  sum        uint64: XXH3-64 of bytes 0..48
//
//	record
//	  0  type       uint8: 'R' regions, 'Z' resets, 'P' pages, 'E' end
//	  1  reserved   [3]byte: 0
//	  4  n          uint32: entries (R, Z) or pages (P); 0 for E
//	  8  addr       uint64: the first page's address (P); 0 otherwise
//	 16  payload    as the type says
//	     sum        uint64: XXH3-64, seeded with the previous sum (the
//	                header's for the first record), of the record's 16
//	                header bytes followed by the XXH3-64 of its payload
//
//	payloads
//	  R  n × 24: address uint64, length uint64, protection uint8 (bit 0
//	     read, bit 1 write), advice uint8 (bit 0 DontFork, bit 1
//	     WipeOnFork), 6 bytes 0. Every region of the space, in address
//	     order, disjoint, page-aligned.
//	  Z  n × 16: address uint64, pages uint64. The ranges whose contents
//	     were dropped since the base, in address order, disjoint (deltas
//	     only; a full image has none).
//	  P  n × page size: the contents of n pages from addr on, all inside
//	     regions. Pages records come in increasing address order and do
//	     not overlap; n is at most 4 MiB of pages.
//	  E  32 bytes: regions, pages, records before this one, and bytes
//	     before this one (header included), each uint64.
//
// The records come in the order R, Z (deltas only), P..., E. The sums
// chain: a record altered, dropped, duplicated or moved breaks every sum
// after it, and the header's sum covers the image's and the base's
// identity. A page that is not in a pages record reads zero after a full
// load, and keeps its contents after a delta unless a Z range covers it.
// Pages that were never written, or that read as the shared zero page,
// are not stored; nor, in a full image, pages that hold only zeros (the
// untouched part of a large folio), which a Load leaves unmapped. A delta
// stores every page written since its base, zeros or not.
//
// A Save visits only the page-table slots that map something, so a region
// reserved large and used sparsely costs what it uses: 1 TiB reserved with
// one page written saves in well under a millisecond
// (TestSaveOfReservedSpace; 0.19 s when each 2 MiB was visited). A Load
// maps each run of the image with folios no larger than the run, so a
// sparse image loads as sparse as it was saved.
package snapshot
