package pin

import (
	"github.com/anonfolio/anonfolio/folio"
	mmfolio "github.com/anonfolio/anonfolio/internal/mm/folio"
)

// engine returns the arena's engine: its ledger and folio operations, which
// these tests check the pins against.
func engine(a *folio.Arena) *mmfolio.Arena { return (*mmfolio.Arena)(a) }
