package snapshot

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	mm "github.com/anonfolio/anonfolio/internal/mm/cow"
	"github.com/anonfolio/anonfolio/internal/spacetest"
)

// state is what a space is, for comparing: its regions and the contents of
// every readable one.
func state(t testing.TB, s *cow.Space) string {
	t.Helper()
	var b bytes.Buffer
	for _, r := range s.Regions() {
		fmt.Fprintf(&b, "%v\n", r)
		if r.Prot != cow.ProtNone {
			buf := make([]byte, r.Length)
			if _, err := s.ReadAt(buf, int64(r.Addr)); err != nil {
				t.Fatalf("reading %v: %v", r, err)
			}
			b.Write(buf)
		}
	}
	return b.String()
}

// unprotectedState is state with ProtNone regions read too (through a
// snapshot's Fork, which has every region, with the protections lifted): a
// load must keep their contents.
func unprotectedState(t testing.TB, e *spacetest.Env, s *cow.Space) string {
	t.Helper()
	m, _, err := (*mm.Space)(s).SnapshotFork(false)
	if err != nil {
		t.Fatal(err)
	}
	c := (*cow.Space)(m)
	defer c.Close()
	for _, r := range c.Regions() {
		if r.Prot == cow.ProtNone {
			if err := c.Protect(r.Addr, r.Length, cow.ProtRead); err != nil {
				t.Fatal(err)
			}
		}
	}
	var b bytes.Buffer
	for _, r := range s.Regions() {
		fmt.Fprintf(&b, "%v\n", r)
		buf := make([]byte, r.Length)
		if _, err := c.ReadAt(buf, int64(r.Addr)); err != nil {
			t.Fatalf("reading %v: %v", r, err)
		}
		b.Write(buf)
	}
	return b.String()
}

// save saves s and fails the test on an error.
func save(t testing.TB, s *cow.Space, opts Options) ([]byte, Info) {
	t.Helper()
	var b bytes.Buffer
	info, err := Save(&b, s, opts)
	if err != nil {
		t.Fatalf("Save(%+v): %v", opts, err)
	}
	if info.Bytes != int64(b.Len()) {
		t.Fatalf("Save says it wrote %d bytes, the writer got %d", info.Bytes, b.Len())
	}
	return b.Bytes(), info
}

// load loads img into s and fails the test on an error.
func load(t testing.TB, img []byte, s *cow.Space) Info {
	t.Helper()
	info, err := Load(bytes.NewReader(img), s)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if info.Bytes != int64(len(img)) {
		t.Fatalf("Load says it read %d bytes of a %d-byte image", info.Bytes, len(img))
	}
	return info
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
