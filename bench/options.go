package bench

import (
	"fmt"
	"strings"

	"github.com/anonfolio/anonfolio/cow"
)

// optionsLiteral returns the Go literal of the cow.Options that give a
// space policy p, ready to paste: "cow.Options{}" for the arena's default
// orders (defaults) with page COW, "cow.Options{Orders: cow.Orders(4)}"
// for 64 KiB folios on 4 KiB pages, with "CopyUnit: cow.CopyFolio" for
// folio COW. The orders are those of this arena's geometry.
func optionsLiteral(p Policy, defaults cow.OrderSet) string {
	var fields []string
	if p.Orders != defaults {
		var orders []string
		for o := 1; o < 31; o++ { // order 0 is always in the set
			if p.Orders.Has(o) {
				orders = append(orders, fmt.Sprint(o))
			}
		}
		fields = append(fields, "Orders: cow.Orders("+strings.Join(orders, ", ")+")")
	}
	if p.CopyUnit == cow.CopyFolio {
		fields = append(fields, "CopyUnit: cow.CopyFolio")
	}
	return "cow.Options{" + strings.Join(fields, ", ") + "}"
}
