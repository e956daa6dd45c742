package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/cow"
)

// notHuge counts the PMD ranges of the carved spans that are populated
// but not mapped by a huge entry.
func notHuge(s *Store) int {
	ref := s.slab.Load()
	pmd := cow.Addr(s.ps * s.ps / 8)
	n := 0
	area := cow.Addr(classReserve(s.maxRecord))
	for a := ref.a.Root() + area; a+pmd <= ref.a.Root()+cow.Addr(ref.len); a += pmd {
		e, ok := s.sp.Pagemap(a)
		if !ok { // the end of what this class populated
			a = ref.a.Root() + (a-ref.a.Root())/area*area + area - pmd
			continue
		}
		if !e.Huge {
			n++
		}
	}
	return n
}

// TestCollapseAfterSave: writes while a snapshot lives leave ranges
// mapped page by page; the cron's Maintain maps them huge again, a few at
// a time, and the data stays what it was.
func TestCollapseAfterSave(t *testing.T) {
	s := openTest(t, testOptions())
	model := map[string]string{}
	keys := 40000
	if testing.Short() {
		keys = 15000 // still several 2 MiB ranges
	}
	for i := range keys {
		k, v := fmt.Sprintf("key-%d", i), fmt.Sprintf("%0300d", i)
		if err := s.Put([]byte(k), []byte(v)); err != nil {
			t.Fatal(err)
		}
		model[k] = v
	}
	if err := s.Maintain(time.Minute); err != nil { // finish the rehashes of the fill
		t.Fatal(err)
	}
	before := notHuge(s)
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < keys; i += 7 { // copy-on-write all over the slab
		k, v := fmt.Sprintf("key-%d", i), fmt.Sprintf("%0300d", -i)
		if err := s.Put([]byte(k), []byte(v)); err != nil {
			t.Fatal(err)
		}
		model[k] = v
	}
	sn.Close()
	s.sp.SplitDeferred()
	split := notHuge(s)
	if split <= before {
		t.Fatalf("%d ranges not huge after writes under a snapshot, %d before: nothing to test", split, before)
	}
	for i := 0; notHuge(s) > before; i++ {
		if err := s.Maintain(time.Second); err != nil {
			t.Fatal(err)
		}
		if i > 10000 {
			t.Fatalf("%d ranges still not huge", notHuge(s))
		}
	}
	if st := s.Stats(); st.Collapsed == 0 {
		t.Fatalf("stats: %d collapsed", st.Collapsed)
	}
	t.Logf("%d ranges not huge before the snapshot, %d after the writes, %d collapsed", before, split, s.Stats().Collapsed)
	checkStore(t, s, model)
	checkImage(t, s)
}
