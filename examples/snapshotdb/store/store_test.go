package store

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
)

// TestModel runs random Puts, Gets, Deletes and snapshots against a Go
// map: every answer must match, and every snapshot must keep the state it
// was taken in while the store goes on.
func TestModel(t *testing.T) {
	ops := 20000
	if testing.Short() {
		ops = 5000
	}
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 0))
			s := openTest(t, testOptions())
			model := map[string]string{}
			type snap struct {
				sn    *Snapshot
				model map[string]string
			}
			var snaps []snap
			keys := 600 // few enough that keys are overwritten and deleted often
			for i := range ops {
				k := []byte(fmt.Sprintf("key-%d", r.IntN(keys)))
				switch op := r.IntN(100); {
				case op < 50:
					v := randValue(r, fmt.Sprint(i))
					if err := s.Put(k, v); err != nil {
						t.Fatal(err)
					}
					model[string(k)] = string(v)
				case op < 75:
					ok, err := s.Delete(k)
					_, want := model[string(k)]
					if err != nil || ok != want {
						t.Fatalf("Delete(%q) = %v, %v; want %v", k, ok, err, want)
					}
					delete(model, string(k))
				case op < 99:
					got, err := s.Get(k)
					want, ok := model[string(k)]
					if ok != (err == nil) || (ok && string(got) != want) || (!ok && !errors.Is(err, ErrNotFound)) {
						t.Fatalf("Get(%q) = %d bytes, %v; want %d bytes, %v", k, len(got), err, len(want), ok)
					}
				default:
					sn, err := s.Snapshot()
					if err != nil {
						t.Fatal(err)
					}
					snaps = append(snaps, snap{sn, maps.Clone(model)})
					if len(snaps) > 3 { // keep a few alive, check and close the oldest
						old := snaps[0]
						snaps = snaps[1:]
						if err := sameContents(contents(t, old.sn.Range), old.model); err != nil {
							t.Fatalf("snapshot: %v", err)
						}
						if old.sn.Len() != len(old.model) {
							t.Fatalf("snapshot Len %d, want %d", old.sn.Len(), len(old.model))
						}
						old.sn.Close()
					}
				}
				if s.Len() != len(model) {
					t.Fatalf("op %d: Len %d, model %d", i, s.Len(), len(model))
				}
			}
			var live []*Snapshot
			for _, sn := range snaps {
				live = append(live, sn.sn)
			}
			checkStore(t, s, model, live...)
			if err := sameContents(contents(t, s.Range), model); err != nil {
				t.Fatal(err)
			}
			for _, sn := range snaps {
				for k, v := range sn.model {
					got, err := sn.sn.Get([]byte(k))
					if err != nil || string(got) != v {
						t.Fatalf("snapshot Get(%q): %v", k, err)
					}
				}
				sn.sn.Close()
			}
			if st := s.Stats(); st.Keys != int64(len(model)) {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestGrowth fills a store from the smallest tables, so that every shard
// rehashes many times (incrementally: each write moves a bucket), checks
// it in the middle of rehashes, then deletes most keys so that the cron
// shrinks the tables, and refills.
func TestGrowth(t *testing.T) {
	opts := testOptions()
	opts.Shards = 2
	s := openTest(t, opts)
	model := map[string]string{}
	n := 20000
	if testing.Short() {
		n = 5000
	}
	sawRehash := false
	for i := range n {
		k, v := fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i*7)
		if err := s.Put([]byte(k), []byte(v)); err != nil {
			t.Fatal(err)
		}
		model[k] = v
		if !sawRehash && s.Stats().Rehashing > 0 {
			sawRehash = true
			checkStore(t, s, model) // every key found in either table
		}
	}
	if !sawRehash {
		t.Fatal("no rehash while filling")
	}
	checkStore(t, s, model)
	finishRehash(t, s)
	grown := s.Stats().IndexSlots
	if grown < int64(n) || grown > 4*int64(n) {
		t.Fatalf("%d keys in %d buckets", n, grown)
	}
	for i := range n {
		if i%10 != 0 {
			k := fmt.Sprintf("k%d", i)
			if ok, err := s.Delete([]byte(k)); !ok || err != nil {
				t.Fatal(k, ok, err)
			}
			delete(model, k)
		}
	}
	finishRehash(t, s) // the cron shrinks tables less than a tenth full
	if shrunk := s.Stats().IndexSlots; shrunk*4 > grown {
		t.Fatalf("%d keys in %d buckets after deleting 90%% (%d before)", len(model), shrunk, grown)
	}
	checkStore(t, s, model)
	for i := range n {
		k := fmt.Sprintf("new%d", i)
		if err := s.Put([]byte(k), []byte(k)); err != nil {
			t.Fatal(err)
		}
		model[k] = k
	}
	checkStore(t, s, model)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	checkStore(t, s, map[string]string{})
	if err := s.Put([]byte("after"), []byte("flush")); err != nil {
		t.Fatal(err)
	}
	checkStore(t, s, map[string]string{"after": "flush"})
}

// finishRehash runs the cron's maintenance until no shard is rehashing
// and none wants to shrink.
func finishRehash(t testing.TB, s *Store) {
	t.Helper()
	for i := 0; ; i++ {
		before := s.Stats().IndexSlots
		if err := s.Maintain(time.Second); err != nil {
			t.Fatal(err)
		}
		if st := s.Stats(); st.Rehashing == 0 && st.IndexSlots == before {
			return
		}
		if i > 100000 {
			t.Fatal("the rehash does not end")
		}
	}
}

func TestBadInput(t *testing.T) {
	s := openTest(t, Options{Arena: folio.Config{Size: 64 << 20}, MaxRecord: 256 << 20})
	if err := s.Put(make([]byte, MaxKeyLen+1), nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized key: %v", err)
	}
	if err := s.Put([]byte("k"), make([]byte, MaxValueLen+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized value: %v", err)
	}
	// An empty key and an empty value are fine, as in Redis.
	if err := s.Put(nil, nil); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get(nil); err != nil || len(v) != 0 {
		t.Fatalf("Get(empty) = %q, %v", v, err)
	}
	// A value larger than the arena is an error, and the store goes on.
	if err := s.Put([]byte("big"), make([]byte, 80<<20)); !errors.Is(err, folio.ErrNoMemory) {
		t.Fatalf("value larger than the arena: %v", err)
	}
	checkStore(t, s, map[string]string{"": ""})
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Put([]byte("k"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
	if _, err := s.Get([]byte("k")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if _, err := s.Snapshot(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Snapshot after Close: %v", err)
	}
	// The snapshot outlives the store.
	if v, err := sn.Get(nil); err != nil || len(v) != 0 || sn.Len() != 1 {
		t.Fatalf("snapshot after the store's Close: %q, %v", v, err)
	}
	if err := sn.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Get(nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get on a closed snapshot: %v", err)
	}
}

func TestAppendGet(t *testing.T) {
	s := openTest(t, testOptions())
	val := bytes.Repeat([]byte("v"), 300)
	s.Put([]byte("k"), val)
	buf := make([]byte, 2, 1024)
	copy(buf, "ab")
	out, err := s.AppendGet(buf, []byte("k"))
	if err != nil || string(out) != "ab"+string(val) || &out[0] != &buf[0] {
		t.Fatalf("AppendGet into room: %q, %v", out, err)
	}
	key := []byte("k")
	if n := testing.AllocsPerRun(100, func() { s.AppendGet(buf[:0], key) }); n != 0 {
		t.Errorf("AppendGet with room allocates %v times", n)
	}
	small := []byte("xy")
	if out, err := s.AppendGet(small, []byte("k")); err != nil || string(out) != "xy"+string(val) {
		t.Fatalf("AppendGet without room: %q, %v", out, err)
	}
}

// TestMaxRecord: a record past Options.MaxRecord is ErrTooLarge, changes
// nothing, and the store goes on; a loaded store keeps the limit.
func TestMaxRecord(t *testing.T) {
	if _, err := Open(Options{MaxRecord: 3 << 20}); !errors.Is(err, cow.ErrInvalid) {
		t.Fatalf("MaxRecord not a power of two: %v", err)
	}
	opts := testOptions()
	opts.MaxRecord = 1 << 20
	s := openTest(t, opts)
	if err := s.Put([]byte("k"), make([]byte, 1<<20)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a record past MaxRecord: %v", err)
	}
	if err := s.Put([]byte("k"), make([]byte, 1<<20-100)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append([]byte("k"), make([]byte, 100)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("an append past MaxRecord: %v", err)
	}
	checkStore(t, s, map[string]string{"k": string(make([]byte, 1<<20-100))})
	l, err := Load(bytes.NewReader(saveBytes(t, s)), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Put([]byte("j"), make([]byte, 1<<20)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a record past the loaded store's MaxRecord: %v", err)
	}
}
