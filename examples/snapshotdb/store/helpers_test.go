package store

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
)

// testOptions: a small arena, so tests stay light under -race (whose
// arenas live in the Go heap).
func testOptions() Options { return Options{Arena: folio.Config{Size: 256 << 20}} }

func openTest(t testing.TB, opts Options) *Store {
	t.Helper()
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// randValue returns a value of a random size: mostly small, some over a
// page and some over the writers' 4 KiB scratch, so that items straddle
// pages and take every write path.
func randValue(r *rand.Rand, tag string) []byte {
	n := r.IntN(64)
	switch r.IntN(10) {
	case 0:
		n = r.IntN(3 * 4096)
	case 1:
		n = 200 + r.IntN(400)
	}
	v := make([]byte, n)
	for i := range v {
		v[i] = byte(r.Uint32())
	}
	return append([]byte(tag), v...)
}

// contents reads every key of a snapshot (or store) through Range.
func contents(t testing.TB, rng func(func(k, v []byte) bool) error) map[string]string {
	t.Helper()
	m := map[string]string{}
	if err := rng(func(k, v []byte) bool {
		if _, dup := m[string(k)]; dup {
			t.Errorf("Range gave key %q twice", k)
		}
		m[string(k)] = string(v)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return m
}

// sameContents reports the first difference between two key sets.
func sameContents(got, want map[string]string) error {
	if maps.Equal(got, want) {
		return nil
	}
	for k, v := range want {
		if g, ok := got[k]; !ok {
			return fmt.Errorf("key %q missing (%d keys, want %d)", k, len(got), len(want))
		} else if g != v {
			return fmt.Errorf("key %q: %d bytes %q..., want %d bytes %q...", k, len(g), head(g), len(v), head(v))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			return fmt.Errorf("extra key %q (%d keys, want %d)", k, len(got), len(want))
		}
	}
	return nil
}

func head(s string) string { return s[:min(len(s), 16)] }

// checkStore verifies the store's space (and the snapshots') with cow.Check
// and each key against model through Get.
func checkStore(t testing.TB, s *Store, model map[string]string, snaps ...*Snapshot) {
	t.Helper()
	spaces := []*cow.Space{s.sp}
	for _, sn := range snaps {
		spaces = append(spaces, sn.sp)
	}
	if err := cow.Check(spaces...); err != nil {
		t.Fatal(err)
	}
	if s.Len() != len(model) {
		t.Fatalf("Len %d, model %d", s.Len(), len(model))
	}
	for k, v := range model {
		got, err := s.Get([]byte(k))
		if err != nil || !bytes.Equal(got, []byte(v)) {
			t.Fatalf("Get(%q) = %d bytes, %v; want %d bytes", k, len(got), err, len(v))
		}
	}
}
