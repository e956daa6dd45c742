package folio_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/anonfolio/anonfolio/folio"
)

// TestArenaPrints: an arena prints as one short line (not its page
// descriptors), and still does once closed, when its memory is gone.
func TestArenaPrints(t *testing.T) {
	a, err := folio.NewArena(folio.Config{Size: 64 << 20, PageSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	open := fmt.Sprint(a)
	if want := "folio.Arena(64 MiB of 4 KiB pages, folios up to 2 MiB: 64 MiB free, spaces: 0)"; open != want {
		t.Errorf("an open arena prints %q, want %q", open, want)
	}
	if st := fmt.Sprint(a.Stats()); len(st) > 120 || strings.Contains(st, "\n") {
		t.Errorf("Stats print %q: not one short line", st)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(a); got != "folio.Arena(64 MiB, closed)" {
		t.Errorf("a closed arena prints %q", got)
	}
	if st := a.Stats(); st.TotalPages != 16384 {
		t.Errorf("Stats of a closed arena: %+v", st)
	}
}

// TestConfigErrors: bad configurations are ErrInvalid, with the value at
// fault in the message.
func TestConfigErrors(t *testing.T) {
	for _, cfg := range []folio.Config{{Size: -1}, {PageSize: 5000}, {PageSize: 4096, MaxOrder: 12}} {
		_, err := folio.NewArena(cfg)
		if !errors.Is(err, folio.ErrInvalid) {
			t.Errorf("NewArena(%+v) = %v, want ErrInvalid", cfg, err)
		}
	}
}
