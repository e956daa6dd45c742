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

// splitUnderSnapshot fills a store, then writes all over its slab while
// a snapshot lives, so that those ranges are mapped page by page. It
// returns the store, its contents, and how many ranges were not huge
// before the snapshot and after the writes.
func splitUnderSnapshot(t *testing.T) (s *Store, model map[string]string, before, split int) {
	t.Helper()
	s = openTest(t, testOptions())
	model = map[string]string{}
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
	before = notHuge(s)
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
	split = notHuge(s)
	if split <= before+1 {
		t.Fatalf("%d ranges not huge after writes under a snapshot, %d before: nothing to test", split, before)
	}
	return s, model, before, split
}

// setCollapseBudget sets how long a Maintain call collapses.
func setCollapseBudget(s *Store, d time.Duration) {
	s.cronMu.Lock()
	s.collapseBudget = d
	s.cronMu.Unlock()
}

// TestCollapseAfterSave: writes while a snapshot lives leave ranges
// mapped page by page; the cron's Maintain maps them huge again, and the
// data stays what it was.
func TestCollapseAfterSave(t *testing.T) {
	s, model, before, split := splitUnderSnapshot(t)
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

// collapseCalls calls Maintain until no more ranges are split than
// before, and returns how many ranges each call that collapsed some
// collapsed.
func collapseCalls(t *testing.T, s *Store, before int) []uint64 {
	t.Helper()
	var per []uint64
	for i := 0; notHuge(s) > before; i++ {
		c := s.Stats().Collapsed
		if err := s.Maintain(time.Second); err != nil {
			t.Fatal(err)
		}
		if n := s.Stats().Collapsed - c; n > 0 {
			per = append(per, n)
		}
		if i > 10000 {
			t.Fatalf("%d ranges still not huge", notHuge(s))
		}
	}
	return per
}

// TestCollapseBurst: a Maintain call goes on collapsing while its budget
// lasts, so that the ranges a save split are mapped huge again in a call
// or two rather than a few per call; with no budget left it still
// collapses one range, so that the collapses always progress.
func TestCollapseBurst(t *testing.T) {
	s, model, before, split := splitUnderSnapshot(t)
	setCollapseBudget(s, time.Hour)
	if per := collapseCalls(t, s, before); len(per) > 2 {
		t.Fatalf("with budget to spare, the collapses of %d split ranges took %d calls (%v), want at most 2", split, len(per), per)
	}
	checkStore(t, s, model)

	s, model, before, split = splitUnderSnapshot(t)
	setCollapseBudget(s, 0)
	per := collapseCalls(t, s, before)
	for _, n := range per {
		if n != 1 {
			t.Fatalf("without budget, Maintain calls collapsed %v ranges (%d split), want 1 each", per, split)
		}
	}
	checkStore(t, s, model)
	checkImage(t, s)
}
