package cow

import (
	"testing"

	"github.com/anonfolio/anonfolio/folio"
	mm "github.com/anonfolio/anonfolio/internal/mm/cow"
)

// TestValuesMatchTheEngine: the facade's constants are converted to the
// engine's by value, so each must equal its engine twin.
func TestValuesMatchTheEngine(t *testing.T) {
	pairs := []struct {
		name     string
		pub, eng int
	}{
		{"ProtNone", int(ProtNone), int(mm.ProtNone)},
		{"ProtRead", int(ProtRead), int(mm.ProtRead)},
		{"ProtWrite", int(ProtWrite), int(mm.ProtWrite)},
		{"CopyPage", int(CopyPage), int(mm.CopyPage)},
		{"CopyFolio", int(CopyFolio), int(mm.CopyFolio)},
		{"DontNeed", int(DontNeed), int(mm.DontNeed)},
		{"DontFork", int(DontFork), int(mm.DontFork)},
		{"DoFork", int(DoFork), int(mm.DoFork)},
		{"WipeOnFork", int(WipeOnFork), int(mm.WipeOnFork)},
		{"KeepOnFork", int(KeepOnFork), int(mm.KeepOnFork)},
		{"Collapse", int(Collapse), int(mm.Collapse)},
		{"PopulateRead", int(PopulateRead), int(mm.PopulateRead)},
		{"PopulateWrite", int(PopulateWrite), int(mm.PopulateWrite)},
	}
	for _, p := range pairs {
		if p.pub != p.eng {
			t.Errorf("cow.%s = %d, the engine's is %d", p.name, p.pub, p.eng)
		}
	}
}

// TestZeroSpace: a Space that NewSpace did not make reports ErrInvalid from
// every method instead of crashing, and prints as invalid.
func TestZeroSpace(t *testing.T) {
	for _, s := range []*Space{nil, new(Space)} {
		if _, err := s.Map(4096, ProtRead); err == nil {
			t.Errorf("Map on %v: no error", s)
		}
		if _, err := s.ReadAt(make([]byte, 1), 1<<32); err == nil {
			t.Errorf("ReadAt on %v: no error", s)
		}
		if _, err := s.Fork(); err == nil {
			t.Errorf("Fork on %v: no error", s)
		}
		if err := s.Close(); err == nil {
			t.Errorf("Close on %v: no error", s)
		}
		if got := s.String(); got != "cow.Space(invalid)" {
			t.Errorf("String() = %q", got)
		}
		if err := Check(s); err == nil {
			t.Errorf("Check of %v: no error", s)
		}
	}
}

// TestSpacePrints: a space prints as one line, open or closed.
func TestSpacePrints(t *testing.T) {
	a, err := folio.NewArena(folio.Config{Size: 8 << 20, PageSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	s, err := NewSpace(a, Options{})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.Map(2<<20, ProtRead|ProtWrite)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteAt([]byte("x"), int64(addr)); err != nil {
		t.Fatal(err)
	}
	if got, want := s.String(), "cow.Space(1: regions 1, 2 MiB resident, forks 0, orders {0,4,9})"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	s.Close()
	if got := s.String(); got != "cow.Space(1, closed)" {
		t.Errorf("closed: String() = %q", got)
	}
}
