package pte

import (
	"fmt"
	"strings"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
)

// PTE is one software page-table entry: a page frame number and flag bits.
// Entries live in tables as atomic words; a PTE value is a snapshot of one.
// The zero PTE is "none": nothing mapped.
type PTE uint64

// PTE flag bits.
const (
	Present  PTE = 1 << iota // maps a page
	Write                    // writable
	Dirty                    // written since it was last cleaned
	Young                    // accessed since it was last aged
	Cont                     // part of a contiguous block (contpte); private to this package's setters
	Zero                     // maps the shared zero page (special: no folio behind it)
	ProtNone                 // maps a page that allows no access (PROT_NONE): every access faults

	pfnShift = 12
	flagMask = 1<<pfnShift - 1

	// accessBits are the bits hardware would set on access: gathered over a
	// contpte block, ignored when deciding whether entries match. SoftDirty
	// is one of them: a block is tracked as a unit, and an entry's mapping
	// does not change when its written state does.
	accessBits = Dirty | Young | SoftDirty
)

// SoftDirty marks a page written since the space's last snapshot cleared
// the bit (soft-dirty, _PAGE_SOFT_DIRTY). A flag bit like the others.
const SoftDirty = ProtNone << 1

// ZeroPTE maps the shared zero page: present, read-only, special.
const ZeroPTE = Present | Zero

// Mk returns a PTE that maps pfn with flags (pfn_pte).
func Mk(pfn folio.PFN, flags PTE) PTE { return PTE(pfn)<<pfnShift | flags&flagMask }

// PFN returns the page frame number the entry maps (pte_pfn).
func (p PTE) PFN() folio.PFN { return folio.PFN(p >> pfnShift) }

// Flags returns the entry's flag bits.
func (p PTE) Flags() PTE { return p & flagMask }

// None reports whether nothing is mapped (pte_none).
func (p PTE) None() bool { return p == 0 }

// Present reports whether the entry maps a page (pte_present).
func (p PTE) Present() bool { return p&Present != 0 }

// Write reports whether the entry is writable (pte_write).
func (p PTE) Write() bool { return p&Write != 0 }

// Dirty reports whether the page was written (pte_dirty).
func (p PTE) Dirty() bool { return p&Dirty != 0 }

// Young reports whether the page was accessed (pte_young).
func (p PTE) Young() bool { return p&Young != 0 }

// SoftDirty reports whether the page was written since the space's last
// snapshot cleared the bit (pte_soft_dirty).
func (p PTE) SoftDirty() bool { return p&SoftDirty != 0 }

// Cont reports whether the entry is part of a contpte block (pte_cont).
func (p PTE) Cont() bool { return p&Cont != 0 }

// Zero reports whether the entry maps the shared zero page.
func (p PTE) Zero() bool { return p&Zero != 0 }

// ProtNone reports whether the entry maps a page that allows no access
// (pte_protnone). Such an entry still maps the page: its data survives a
// PROT_NONE round trip.
func (p PTE) ProtNone() bool { return p&ProtNone != 0 }

// Accessible reports whether the page may be read through the entry.
func (p PTE) Accessible() bool { return p&(Present|ProtNone) == Present }

// MkWrite returns p writable (pte_mkwrite).
func (p PTE) MkWrite() PTE { return p | Write }

// WrProtect returns p read-only (pte_wrprotect).
func (p PTE) WrProtect() PTE { return p &^ Write }

// MkDirty returns p dirty (pte_mkdirty).
func (p PTE) MkDirty() PTE { return p | Dirty }

// MkClean returns p clean (pte_mkclean).
func (p PTE) MkClean() PTE { return p &^ Dirty }

// MkSoftDirty returns p marked written (pte_mksoft_dirty).
func (p PTE) MkSoftDirty() PTE { return p | SoftDirty }

// ClearSoftDirty returns p not marked written (pte_clear_soft_dirty).
func (p PTE) ClearSoftDirty() PTE { return p &^ SoftDirty }

// MkYoung returns p young (pte_mkyoung).
func (p PTE) MkYoung() PTE { return p | Young }

// MkOld returns p old (pte_mkold).
func (p PTE) MkOld() PTE { return p &^ Young }

// mkCont and mkNonCont are private: only the contpte code decides Cont.
func (p PTE) mkCont() PTE    { return p | Cont }
func (p PTE) mkNonCont() PTE { return p &^ Cont }

// Advance returns p with its PFN moved on by n pages (pte_advance_pfn).
func (p PTE) Advance(n int) PTE { return p + PTE(n)<<pfnShift }

// SameMapping reports whether two entries map the same page with the same
// permission, ignoring the access bits and Cont, which folding, unfolding
// and access tracking change without changing what is mapped. It is the
// recheck of the lockless paths: a grab made through a is still good if the
// entry now reads b.
func SameMapping(a, b PTE) bool {
	const ignore = accessBits | Cont
	return a&^ignore == b&^ignore
}

// String formats an entry for errors and tests: "pfn 0x12 P W D Y C S".
func (p PTE) String() string {
	if p.None() {
		return "none"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "pfn %#x", uint64(p.PFN()))
	for _, f := range []struct {
		bit  PTE
		name string
	}{{Present, "P"}, {Write, "W"}, {Dirty, "D"}, {Young, "Y"}, {Cont, "C"}, {Zero, "Z"}, {ProtNone, "N"}, {SoftDirty, "S"}} {
		if p&f.bit != 0 {
			b.WriteString(" " + f.name)
		}
	}
	return b.String()
}
