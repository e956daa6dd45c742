package folio

import (
	"fmt"
	"math/bits"
)

// Page size limits. The range is arm64's: 4, 16 and 64 KiB granules, and the
// powers of two between them. Above 64 KiB a PMD-order folio would have more
// pages than the 16-bit per-mm mapcounts can count.
const (
	MinPageSize = 4 << 10
	MaxPageSize = 64 << 10
)

// NrOrders bounds every per-order array: orders 0..NrOrders-1. The largest
// order any geometry allows is the PMD order of 64 KiB pages, 13.
const NrOrders = 14

// Geometry is the shape of an arena's memory and of the page tables that map
// it. It is derived once from the base page size; the values follow the
// kernel (PMD order) and arm64 (contpte block size).
type Geometry struct {
	PageSize     int  // base page size in bytes, a power of two
	PageShift    uint // log2(PageSize)
	MaxOrder     int  // largest folio order the arena hands out
	PMDOrder     int  // log2(PageSize/8): the pages one page-table page maps
	TableEntries int  // PageSize/8: entries in one page-table page
	ContPTEs     int  // entries in one contiguous-PTE block
	ContOrder    int  // log2(ContPTEs)
}

// contShift is arm64's CONFIG_ARM64_CONT_PTE_SHIFT per granule: 16 entries
// (64 KiB) for 4 KiB pages, 128 (2 MiB) for 16 KiB, 32 (2 MiB) for 64 KiB.
// arm64 has no 8 or 32 KiB granule; we give them the block of their smaller
// neighbour's shape (128 KiB for 8 KiB, 2 MiB for 32 KiB).
func contShift(pageShift uint) int {
	switch pageShift {
	case 12:
		return 4
	case 13:
		return 4
	case 14:
		return 7
	case 15:
		return 6
	default: // 16
		return 5
	}
}

// NewGeometry returns the geometry of base pages of pageSize bytes with
// folios up to maxOrder. pageSize 0 means the host's page size and maxOrder
// 0 means the PMD order.
func NewGeometry(pageSize, maxOrder int) (Geometry, error) {
	if pageSize == 0 {
		pageSize = HostPlatform().HostPageSize
	}
	if pageSize < MinPageSize || pageSize > MaxPageSize || pageSize&(pageSize-1) != 0 {
		return Geometry{}, fmt.Errorf("%w: page size %d is not a power of two in [%d, %d]",
			ErrInvalid, pageSize, MinPageSize, MaxPageSize)
	}
	shift := uint(bits.TrailingZeros(uint(pageSize)))
	g := Geometry{
		PageSize:     pageSize,
		PageShift:    shift,
		TableEntries: pageSize / 8,
		PMDOrder:     int(shift) - 3,
		ContOrder:    contShift(shift),
	}
	g.ContPTEs = 1 << g.ContOrder
	switch {
	case maxOrder == 0:
		g.MaxOrder = g.PMDOrder
	case maxOrder < 0 || maxOrder > g.PMDOrder:
		return Geometry{}, fmt.Errorf("%w: max order %d outside [1, %d] (the PMD order of %d-byte pages)",
			ErrInvalid, maxOrder, g.PMDOrder, pageSize)
	default:
		g.MaxOrder = maxOrder
	}
	return g, nil
}

// FolioSize returns the size in bytes of a folio of the given order.
func (g Geometry) FolioSize(order int) int { return g.PageSize << order }

// String describes the geometry in one line, the way the bench prints it.
func (g Geometry) String() string {
	return fmt.Sprintf("page %s, max folio %s (order %d), PMD %s (order %d), contpte %d×%s = %s",
		sizeString(int64(g.PageSize)), sizeString(int64(g.FolioSize(g.MaxOrder))), g.MaxOrder,
		sizeString(int64(g.FolioSize(g.PMDOrder))), g.PMDOrder,
		g.ContPTEs, sizeString(int64(g.PageSize)), sizeString(int64(g.ContPTEs*g.PageSize)))
}

// sizeString formats a byte count with a binary unit: 4096 → "4KiB".
func sizeString(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	u := 0
	for n >= 1024 && n%1024 == 0 && u < len(units)-1 {
		n /= 1024
		u++
	}
	return fmt.Sprintf("%d%s", n, units[u])
}

// HumanSize formats a byte count for people: exact binary units when it
// divides ("64 KiB"), else one decimal of the next unit up ("12.3 MiB").
func HumanSize(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f, u := float64(n), 0
	for f >= 1024 && u < len(units)-1 {
		f /= 1024
		u++
	}
	if f == float64(int64(f)) {
		return fmt.Sprintf("%d %s", int64(f), units[u])
	}
	return fmt.Sprintf("%.1f %s", f, units[u])
}
