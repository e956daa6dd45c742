package snapshot

import (
	"bytes"
	"errors"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/anonfolio/anonfolio/internal/spacetest"
)

// FuzzLoad feeds the decoder arbitrary bytes, seeded with real images (a
// full one and a delta): Load must never panic, must fail with ErrCorrupt,
// ErrMismatch or ErrNoMemory or succeed, must leave the target unchanged
// when it fails, and must leave every space consistent (Check) and every
// page accounted for either way. Each input is loaded into an empty space
// and into a replica at the seed delta's base.
func FuzzLoad(f *testing.F) {
	e := spacetest.New(f, 16<<20, 4096)
	s, a := smallSource(f, e)
	full, _ := save(f, s, Options{})
	e.Write(s, a+2*4096, []byte("delta"))
	must(f, s.Unmap(a+14*4096, 4096))
	delta, _ := save(f, s, Options{Delta: true})
	f.Add(full)
	f.Add(delta)
	f.Add(full[:headerSize])
	f.Fuzz(func(t *testing.T, img []byte) {
		e := spacetest.New(t, 16<<20, 4096)
		empty := e.Space(cow.Options{Orders: cow.Orders()})
		replica := e.Space(cow.Options{Orders: cow.Orders()})
		load(t, full, replica)
		for _, target := range []*cow.Space{empty, replica} {
			before := state(t, target)
			info, err := Load(bytes.NewReader(img), target)
			if info.Bytes > int64(len(img)) {
				t.Fatalf("Load says it read %d bytes of %d", info.Bytes, len(img))
			}
			switch {
			case err == nil:
			case errors.Is(err, ErrCorrupt), errors.Is(err, ErrMismatch), errors.Is(err, folio.ErrNoMemory):
				if state(t, target) != before {
					t.Fatalf("a failed Load (%v) changed the target", err)
				}
			default:
				t.Fatalf("Load: %v: not a sentinel of the package", err)
			}
			e.Check()
		}
	})
}
