package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/folio"
)

// entry is a key of the model: its value and expire time (0: none).
type entry struct {
	value  string
	expire int64
}

// model is what the store should hold, at the model's clock.
type model struct {
	m   map[string]entry
	now *atomic.Int64
}

func (md *model) get(k string) (entry, bool) {
	e, ok := md.m[k]
	if ok && e.expire != 0 && e.expire <= md.now.Load() {
		delete(md.m, k)
		return entry{}, false
	}
	return e, ok
}

// live returns the keys not past their TTL. It deletes nothing: the
// store does not either when it is only saved or iterated.
func (md *model) live() map[string]string {
	out := map[string]string{}
	for k, e := range md.m {
		if e.expire == 0 || e.expire > md.now.Load() {
			out[k] = e.value
		}
	}
	return out
}

// TestCommandsModel runs random commands (SET with its options, GETDEL,
// INCRBY, APPEND, EXPIRE with its conditions, PERSIST, DELETE, MSET) on a
// store with a fake clock that moves, against a model; the active expiry
// and the cron run in between, and now and then the store is saved and the
// image loaded (which validates every structure). Every reply must match.
func TestCommandsModel(t *testing.T) {
	ops := 30000
	if testing.Short() {
		ops = 3000
	}
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			var clock atomic.Int64
			clock.Store(1_000_000)
			opts := testOptions()
			opts.Shards, opts.Clock = 4, clock.Load
			s := openTest(t, opts)
			md := &model{m: map[string]entry{}, now: &clock}
			key := func() string { return fmt.Sprintf("k%d", r.IntN(800)) }
			ttl := func() int64 { // an expire time: mostly in the future, some past
				return clock.Load() + int64(r.IntN(2000)) - 200
			}
			for i := range ops {
				k := key()
				switch op := r.IntN(100); {
				case op < 25: // SET with options
					v := randValue(r, fmt.Sprint(i))
					o := SetOptions{Get: r.IntN(3) == 0}
					switch r.IntN(6) {
					case 0:
						o.IfAbsent = true
					case 1:
						o.IfPresent = true
					}
					switch r.IntN(4) {
					case 0:
						o.ExpireAt = ttl()
					case 1:
						o.KeepTTL = true
					}
					old, existed, stored, err := s.Set(nil, []byte(k), v, o)
					e, ok := md.get(k)
					if err != nil || existed != ok || stored != !(o.IfAbsent && ok || o.IfPresent && !ok) ||
						o.Get && ok && string(old) != e.value {
						t.Fatalf("op %d: SET %s %+v = %q, %v, %v, %v; model %+v, %v", i, k, o, old, existed, stored, err, e, ok)
					}
					if stored {
						ne := entry{string(v), o.ExpireAt}
						if o.KeepTTL && ok {
							ne.expire = e.expire
						}
						md.m[k] = ne
					}
				case op < 35: // GET
					v, err := s.Get([]byte(k))
					e, ok := md.get(k)
					if ok != (err == nil) || ok && string(v) != e.value || !ok && !errors.Is(err, ErrNotFound) {
						t.Fatalf("op %d: GET %s = %q, %v; model %+v, %v", i, k, v, err, e, ok)
					}
				case op < 40: // GETDEL
					v, found, err := s.GetDel(nil, []byte(k))
					e, ok := md.get(k)
					if err != nil || found != ok || ok && string(v) != e.value {
						t.Fatalf("op %d: GETDEL %s = %q, %v, %v; model %+v, %v", i, k, v, found, err, e, ok)
					}
					delete(md.m, k)
				case op < 50: // INCRBY
					d := int64(r.IntN(21) - 10)
					n, err := s.IncrBy([]byte(k), d)
					e, ok := md.get(k)
					cur, isInt := int64(0), true
					if ok {
						cur, isInt = ParseInt([]byte(e.value))
					}
					switch {
					case !isInt:
						if !errors.Is(err, ErrNotInteger) {
							t.Fatalf("op %d: INCRBY %s of %q = %d, %v", i, k, e.value, n, err)
						}
					case err != nil || n != cur+d:
						t.Fatalf("op %d: INCRBY %s %d = %d, %v; model %d", i, k, d, n, err, cur)
					default:
						md.m[k] = entry{strconv.FormatInt(n, 10), e.expire}
					}
				case op < 58: // APPEND
					suffix := randValue(r, "+")
					n, err := s.Append([]byte(k), suffix)
					e, _ := md.get(k)
					if err != nil || n != len(e.value)+len(suffix) {
						t.Fatalf("op %d: APPEND %s = %d, %v; model %d+%d", i, k, n, err, len(e.value), len(suffix))
					}
					md.m[k] = entry{e.value + string(suffix), e.expire}
				case op < 70: // EXPIRE with a condition
					at := ttl()
					cond := []ExpireCond{ExpireAlways, ExpireNX, ExpireXX, ExpireGT, ExpireLT, ExpireXX | ExpireLT}[r.IntN(6)]
					done, err := s.Expire([]byte(k), at, cond)
					e, ok := md.get(k)
					want := ok && !(cond&ExpireNX != 0 && e.expire != 0 || cond&ExpireXX != 0 && e.expire == 0 ||
						cond&ExpireGT != 0 && (e.expire == 0 || at <= e.expire) || cond&ExpireLT != 0 && e.expire != 0 && at >= e.expire)
					if err != nil || done != want {
						t.Fatalf("op %d: EXPIRE %s %d %d = %v, %v; model %+v, %v", i, k, at, cond, done, err, e, ok)
					}
					if done {
						md.m[k] = entry{e.value, at}
					}
				case op < 75: // PERSIST
					done, err := s.Persist([]byte(k))
					e, ok := md.get(k)
					if err != nil || done != (ok && e.expire != 0) {
						t.Fatalf("op %d: PERSIST %s = %v, %v; model %+v, %v", i, k, done, err, e, ok)
					}
					if done {
						md.m[k] = entry{e.value, 0}
					}
				case op < 80: // TTL
					at, exists, err := s.TTL([]byte(k))
					e, ok := md.get(k)
					if err != nil || exists != ok || ok && at != e.expire {
						t.Fatalf("op %d: TTL %s = %d, %v, %v; model %+v, %v", i, k, at, exists, err, e, ok)
					}
				case op < 88: // DEL of a few keys
					keys := [][]byte{[]byte(k), []byte(key()), []byte(key())}
					n, err := s.DeleteKeys(keys)
					want := 0
					for _, dk := range keys {
						if _, ok := md.get(string(dk)); ok {
							want++
							delete(md.m, string(dk))
						}
					}
					if err != nil || n != want {
						t.Fatalf("op %d: DEL %q = %d, %v; want %d", i, keys, n, err, want)
					}
				case op < 92: // MSET
					kv := [][]byte{[]byte(k), []byte("m1"), []byte(key()), []byte("m2")}
					if _, err := s.MSet(kv, false); err != nil {
						t.Fatal(err)
					}
					md.m[string(kv[0])], md.m[string(kv[2])] = entry{"m1", 0}, entry{"m2", 0}
				case op < 96: // the clock moves; the cron runs
					clock.Add(int64(r.IntN(300)))
					if _, err := s.ExpireCycle(time.Second); err != nil {
						t.Fatal(err)
					}
					if err := s.Maintain(time.Millisecond); err != nil {
						t.Fatal(err)
					}
				case op < 97: // a save, validated by the load
					var img bytes.Buffer
					if err := s.Save(&img); err != nil {
						t.Fatal(err)
					}
					l, err := Load(&img, Options{Arena: folio.Config{Size: 256 << 20}, Clock: clock.Load})
					if err != nil {
						t.Fatalf("op %d: loading a save: %v", i, err)
					}
					if err := sameContents(contents(t, l.Range), md.live()); err != nil {
						t.Fatalf("op %d: the loaded image: %v", i, err)
					}
					l.Close()
				default: // EXISTS with duplicates
					n, err := s.Exists([][]byte{[]byte(k), []byte(k)})
					_, ok := md.get(k)
					if err != nil || n != 2*int(b2i(ok)) {
						t.Fatalf("op %d: EXISTS %s %s = %d, %v; model %v", i, k, k, n, err, ok)
					}
				}
			}
			if err := sameContents(contents(t, s.Range), md.live()); err != nil {
				t.Fatal(err)
			}
			// Touch every key, so that both have deleted what is past its
			// TTL (the store's active expiry deleted some of it already).
			for k := range md.m {
				if _, err := s.Exists([][]byte{[]byte(k)}); err != nil {
					t.Fatal(err)
				}
				md.get(k)
			}
			st := s.Stats()
			expires := 0
			for _, e := range md.m {
				if e.expire != 0 {
					expires++
				}
			}
			if st.Keys != int64(len(md.m)) || st.Expires != int64(expires) {
				t.Fatalf("stats: %d keys, %d with a TTL; the model: %d, %d", st.Keys, st.Expires, len(md.m), expires)
			}
			checkImage(t, s)
		})
	}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// checkImage saves s and loads the image: Load validates every structure.
func checkImage(t testing.TB, s *Store) {
	t.Helper()
	var img bytes.Buffer
	if err := s.Save(&img); err != nil {
		t.Fatal(err)
	}
	l, err := Load(&img, Options{Arena: folio.Config{Size: 256 << 20}})
	if err != nil {
		t.Fatalf("the store's image does not load: %v", err)
	}
	l.Close()
}

// TestConcurrentStress: writers on their own keys run every kind of
// command while readers read, the cron expires and rehashes, and
// snapshots are taken and saved; each save's image must load (a
// consistent store: the quiesce works), and at the end each writer's keys
// must be what it wrote. Run it with -race; it also runs bounded under
// GOMAXPROCS(1).
func TestConcurrentStress(t *testing.T) {
	for _, procs := range []int{0, 1} {
		t.Run(fmt.Sprintf("GOMAXPROCS=%d", procs), func(t *testing.T) {
			if procs > 0 {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			}
			stress(t, 4, 3000)
		})
	}
}

func stress(t *testing.T, writers, opsPerWriter int) {
	if testing.Short() {
		opsPerWriter /= 3
	}
	var clock atomic.Int64
	clock.Store(1_000_000)
	opts := testOptions()
	opts.Shards, opts.Clock = 8, clock.Load
	s := openTest(t, opts)
	models := make([]map[string]string, writers)
	var saves atomic.Int64
	var wg, bg sync.WaitGroup
	stop := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 9))
			md := map[string]string{}
			for i := 0; i < opsPerWriter || saves.Load() < 3; i++ { // until a few saves ran under the writes
				k := fmt.Sprintf("w%d:%d", w, r.IntN(300))
				var err error
				switch r.IntN(8) {
				case 0, 1:
					v := fmt.Sprintf("%s=%d%s", k, i, bytes.Repeat([]byte("x"), r.IntN(600)))
					_, _, _, err = s.Set(nil, []byte(k), []byte(v), SetOptions{ExpireAt: clock.Load() + 1_000_000})
					md[k] = v
				case 2:
					_, err = s.Delete([]byte(k))
					delete(md, k)
				case 3:
					var n int
					if n, err = s.Append([]byte(k), []byte("+")); err == nil {
						md[k] += "+"
						if n != len(md[k]) {
							t.Errorf("APPEND %s: %d, model %d", k, n, len(md[k]))
						}
					}
				case 4:
					_, err = s.Expire([]byte(k), clock.Load()+int64(r.IntN(1000))+1, ExpireAlways)
				case 5:
					_, err = s.Persist([]byte(k))
				case 6:
					kv := [][]byte{[]byte(k), []byte("m"), []byte(fmt.Sprintf("w%d:%d", w, r.IntN(300))), []byte("n")}
					if _, err = s.MSet(kv, false); err == nil {
						md[string(kv[0])], md[string(kv[2])] = "m", "n"
					}
				case 7:
					var v []byte
					v, err = s.Get([]byte(k))
					if want, ok := md[k]; ok != (err == nil) || ok && string(v) != want {
						t.Errorf("GET %s: %q, %v; model %q, %v", k, v, err, want, ok)
					}
					if errors.Is(err, ErrNotFound) {
						err = nil
					}
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
			models[w] = md
		}()
	}
	bg.Add(2)
	go func() { // the cron
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.ExpireCycle(time.Millisecond); err != nil {
				t.Error(err)
			}
			if err := s.Maintain(time.Millisecond); err != nil {
				t.Error(err)
			}
			runtime.Gosched()
		}
	}()
	go func() { // saves and snapshots, validated
		defer bg.Done()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			var img bytes.Buffer
			if err := s.Save(&img); err != nil {
				t.Error(err)
				return
			}
			l, err := Load(&img, Options{Arena: folio.Config{Size: 256 << 20}})
			if err != nil {
				t.Errorf("save %d does not load: %v", n, err)
				return
			}
			l.Close()
			saves.Add(1)
		}
	}()
	wg.Wait()
	close(stop)
	bg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d saves under the writes", saves.Load())
	// No TTL has passed (the clock stood still): each writer's keys are
	// exactly what it wrote.
	got := contents(t, s.Range)
	want := map[string]string{}
	for _, md := range models {
		for k, v := range md {
			want[k] = v
		}
	}
	if err := sameContents(got, want); err != nil {
		t.Fatal(err)
	}
	checkStore(t, s, want)
	checkImage(t, s)
}
