package bench

import (
	"slices"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
)

// A Policy is what a space is told: which folio orders a fault may allocate
// and what a COW fault copies.
type Policy struct {
	Name     string // "2MiB", "default", "64KiB/folio-cow", ...
	OrderSet string // the order-set part of the name
	Orders   cow.OrderSet
	CopyUnit cow.CopyUnit
}

// orderSet is one order-set policy. Its name is the folio size with 4 KiB
// base pages; with other page sizes the order keeps its role (16 KiB is
// order 2, 64 KiB the contpte order, 2 MiB the PMD order), as in the test
// matrix of internal/spacetest.
type orderSet struct {
	name   string
	orders func(g folio.Geometry) cow.OrderSet
}

var orderSets = []orderSet{
	{"4KiB", func(folio.Geometry) cow.OrderSet { return cow.Orders() }},
	{"16KiB", func(g folio.Geometry) cow.OrderSet { return cow.Orders(min(2, g.MaxOrder)) }},
	{"64KiB", func(g folio.Geometry) cow.OrderSet { return cow.Orders(min(g.ContOrder, g.MaxOrder)) }},
	{"256KiB", func(g folio.Geometry) cow.OrderSet { return cow.Orders(min(6, g.MaxOrder)) }},
	{"2MiB", func(g folio.Geometry) cow.OrderSet { return cow.Orders(min(g.PMDOrder, g.MaxOrder)) }},
	{"default", func(g folio.Geometry) cow.OrderSet {
		return cow.Orders(min(g.ContOrder, g.MaxOrder), min(g.PMDOrder, g.MaxOrder))
	}},
	{"all", func(g folio.Geometry) cow.OrderSet {
		var o []int
		for i := 1; i <= g.MaxOrder; i++ {
			o = append(o, i)
		}
		return cow.Orders(o...)
	}},
}

// folioCOWSuffix names the CopyFolio variant of an order set.
const folioCOWSuffix = "/folio-cow"

// PolicyNames returns the order-set policies, smallest first.
func PolicyNames() []string {
	var n []string
	for _, o := range orderSets {
		n = append(n, o.name)
	}
	return n
}

func validPolicyName(name string) bool { return slices.Contains(PolicyNames(), name) }

// Policies returns every policy on geometry g: each order set with page
// COW, then each with folio COW.
func Policies(g folio.Geometry) []Policy { return policies(g, nil, nil, true) }

// policies returns the policies to run for names (nil: all) on geometry g:
// each order set with each COW unit of units (nil: both) if forks, with
// page COW alone otherwise (a workload that never forks never copies).
func policies(g folio.Geometry, names, units []string, forks bool) []Policy {
	var ps []Policy
	for _, unit := range []cow.CopyUnit{cow.CopyPage, cow.CopyFolio} {
		if forks && units != nil && !slices.Contains(units, copyUnitName(unit)) ||
			!forks && unit != cow.CopyPage {
			continue
		}
		for _, o := range orderSets {
			if names != nil && !slices.Contains(names, o.name) {
				continue
			}
			p := Policy{Name: o.name, OrderSet: o.name, Orders: o.orders(g), CopyUnit: unit}
			if unit == cow.CopyFolio {
				p.Name += folioCOWSuffix
			}
			ps = append(ps, p)
		}
	}
	return ps
}

// The kernel rows: a workload run on plain private anonymous memory.
const (
	KernelSmall = "kernel-4KiB" // advised MADV_NOHUGEPAGE
	KernelTHP   = "kernel-THP"  // advised MADV_HUGEPAGE
)
