package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/snapshot"
)

// fill puts n keys into s and returns the model.
func fill(t testing.TB, s *Store, n int, r *rand.Rand) map[string]string {
	t.Helper()
	model := map[string]string{}
	for i := range n {
		k, v := fmt.Sprintf("key-%d", i), randValue(r, fmt.Sprintf("v%d-", i))
		if err := s.Put([]byte(k), v); err != nil {
			t.Fatal(err)
		}
		model[k] = string(v)
	}
	return model
}

func saveBytes(t testing.TB, s *Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Save(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func loadContents(t testing.TB, image []byte) map[string]string {
	t.Helper()
	l, err := Load(bytes.NewReader(image), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	m := contents(t, l.Range)
	checkStore(t, l, m)
	return m
}

func TestSaveLoad(t *testing.T) {
	s := openTest(t, testOptions())
	model := fill(t, s, 3000, rand.New(rand.NewPCG(3, 0)))
	for i := range 1000 { // free chunks and tombstones travel too
		s.Delete([]byte(fmt.Sprintf("key-%d", i*3)))
		delete(model, fmt.Sprintf("key-%d", i*3))
	}
	image := saveBytes(t, s)
	st := s.Stats()
	if st.Saves != 1 || st.LastSaveKeys != int64(len(model)) || st.LastSaveBytes != int64(len(image)) || st.LastSaveErr != nil || st.SaveInProgress {
		t.Fatalf("stats after a save: %+v", st)
	}
	if err := sameContents(loadContents(t, image), model); err != nil {
		t.Fatal(err)
	}
	// The store still works after the save dropped the snapshot.
	checkStore(t, s, model)
	// A loaded store takes writes, and saves the same image again.
	l, err := Load(bytes.NewReader(image), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// The same regions (the image's first record; its identity and so
	// its checksums differ: each image has a random id) and the same
	// contents. (Not the same length: snapshot.Load maps what it loads
	// with large folios, whole, and a full image stores every page they
	// map: a sparse store's image grows on its first save after a load.)
	again := saveBytes(t, l)
	const regionsRecord = 56 + 16 + 2*24 // header, record header, two regions
	if !bytes.Equal(again[56:regionsRecord], image[56:regionsRecord]) {
		t.Fatal("a loaded store saves different regions")
	}
	if err := sameContents(loadContents(t, again), model); err != nil {
		t.Fatal(err)
	}
	t.Logf("image of %d bytes; saved again after a load: %d bytes", len(image), len(again))
	l.Put([]byte("new"), []byte("value"))
	model["new"] = "value"
	checkStore(t, l, model)
}

// TestSaveUnderWrites saves while writers go on. Each writer owns its keys
// and logs its operations in order; since the Fork is atomic with respect to
// every Put and Delete, the image must be, for each writer, its keys'
// initial state plus exactly a prefix of its log. With deltas, every round
// after the first saves a delta, and the chain so far must load as that.
func TestSaveUnderWrites(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(fmt.Sprintf("delta=%v", delta), func(t *testing.T) { saveUnderWrites(t, delta) })
	}
}

func saveUnderWrites(t *testing.T, delta bool) {
	const writers = 3
	keys, rounds := 3000, 3
	if testing.Short() {
		keys, rounds = 1500, 2
	}
	s := openTest(t, testOptions())
	model := fill(t, s, keys, rand.New(rand.NewPCG(4, 0)))
	var chain [][]byte // with delta: the images so far
	type op struct {
		key, value string
		del        bool
	}
	for round := range rounds {
		initial := maps.Clone(model)
		logs := make([][]op, writers)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(round), uint64(w)))
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					k := fmt.Sprintf("key-%d", r.IntN(keys/writers)*writers+w)
					if r.IntN(4) == 0 {
						if _, err := s.Delete([]byte(k)); err != nil {
							t.Error(err)
							return
						}
						logs[w] = append(logs[w], op{key: k, del: true})
						continue
					}
					v := randValue(r, fmt.Sprintf("w%d-%d-", w, i))
					if err := s.Put([]byte(k), v); err != nil {
						t.Error(err)
						return
					}
					logs[w] = append(logs[w], op{key: k, value: string(v)})
				}
			}()
		}
		var image bytes.Buffer
		info, err := s.SaveWith(&image, SaveOptions{Delta: delta && round > 0})
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if info.Delta != (delta && round > 0) {
			t.Fatalf("round %d: a delta %v, want %v", round, info.Delta, delta && round > 0)
		}
		var got map[string]string
		if delta {
			chain = append(chain, image.Bytes())
			rs := make([]io.Reader, len(chain))
			for i, b := range chain {
				rs[i] = bytes.NewReader(b)
			}
			l, err := LoadChain(rs, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			got = contents(t, l.Range)
			checkStore(t, l, got)
			l.Close()
			t.Logf("round %d: an image of %d pages (delta %v)", round, info.Pages, info.Delta)
		} else {
			got = loadContents(t, image.Bytes())
		}
		for w := range writers {
			// Replay the log, tracking how many of w's keys differ from
			// the image: some prefix must leave none.
			state := map[string]string{}
			present := map[string]bool{}
			for k, v := range initial {
				var n int
				fmt.Sscanf(k, "key-%d", &n)
				if n%writers == w {
					state[k], present[k] = v, true
				}
			}
			differ := func(k string) bool { g, ok := got[k]; return ok != present[k] || g != state[k] }
			diffs := 0
			for k := range state {
				if differ(k) {
					diffs++
				}
			}
			for k := range got {
				var n int
				fmt.Sscanf(k, "key-%d", &n)
				if n%writers == w && !present[k] {
					diffs++
				}
			}
			match := diffs == 0
			for _, o := range logs[w] {
				if match {
					break
				}
				before := differ(o.key)
				if o.del {
					delete(state, o.key)
					present[o.key] = false
				} else {
					state[o.key], present[o.key] = o.value, true
				}
				if after := differ(o.key); after != before {
					if after {
						diffs++
					} else {
						diffs--
					}
				}
				match = diffs == 0
			}
			if !match {
				t.Fatalf("round %d: writer %d: the image is no prefix of its %d operations", round, w, len(logs[w]))
			}
			t.Logf("round %d: writer %d: %d operations, the image holds a prefix", round, w, len(logs[w]))
		}
		st := s.Stats()
		if st.LastSaveKeys != int64(len(got)) || st.LastSaveErr != nil {
			t.Fatalf("stats: %d keys saved, the image has %d; %v", st.LastSaveKeys, len(got), st.LastSaveErr)
		}
		t.Logf("round %d: copied %d pages during the save, peak %d KiB held by the snapshot", round, st.LastCowPages, st.LastCowPeak>>10)
		model = contents(t, s.Range)
	}
	checkStore(t, s, model)
}

// craft is a loaded copy of a saved store to edit in place, through its
// space, as a crafted file could hold it; its image is then saved again,
// checksums and all, by package snapshot.
type craft struct {
	s *Store
}

func (c craft) u64(t testing.TB, addr cow.Addr) uint64 {
	t.Helper()
	v, err := readU64(mem{sp: c.s.sp}, addr)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (c craft) put64(t testing.TB, addr cow.Addr, v uint64) {
	t.Helper()
	if err := writeU64(mem{sp: c.s.sp}, addr, v); err != nil {
		t.Fatal(err)
	}
}

func (c craft) flip(t testing.TB, addr cow.Addr) {
	t.Helper()
	var b [1]byte
	c.s.sp.ReadAt(b[:], int64(addr))
	b[0] ^= 1
	if _, err := c.s.sp.WriteAt(b[:], int64(addr)); err != nil {
		t.Fatal(err)
	}
}

// shard returns the header of shard i.
func (c craft) shard(t testing.TB, i int) (cow.Addr, dictState) {
	t.Helper()
	hdr := c.s.root + cow.Addr(c.s.ps*(1+i))
	d, err := readDict(mem{sp: c.s.sp}, hdr)
	if err != nil {
		t.Fatal(err)
	}
	return hdr, d
}

// firstRecord returns the bucket and record of the first non-empty bucket
// of a shard's table 0.
func (c craft) firstRecord(t testing.TB) (bucket cow.Addr, rec cow.Addr) {
	for i := 0; ; i++ {
		_, d := c.shard(t, i)
		for b := range d.t[0].size() {
			if p := c.u64(t, d.t[0].addr+cow.Addr(b*8)); p != 0 {
				return d.t[0].addr + cow.Addr(b*8), cow.Addr(p & addrMask)
			}
		}
	}
}

// superblock rewrites the superblock with edit applied (its CRC kept right).
func (c craft) superblock(t testing.TB, edit func(sb *superblock)) {
	t.Helper()
	var b [supLen]byte
	c.s.sp.ReadAt(b[:], int64(c.s.root))
	sb, err := decodeSuper(b[:])
	if err != nil {
		t.Fatal(err)
	}
	edit(&sb)
	sb.encode(b[:])
	c.s.sp.WriteAt(b[:], int64(c.s.root))
}

func TestLoadRejects(t *testing.T) {
	opts := testOptions()
	opts.Shards = 4
	s := openTest(t, opts)
	fill(t, s, 500, rand.New(rand.NewPCG(5, 0)))
	for i := range 100 {
		s.Delete([]byte(fmt.Sprintf("key-%d", i*2)))
	}
	for i := range 50 {
		s.Expire([]byte(fmt.Sprintf("key-%d", i*2+1)), s.Now()+3600_000, ExpireAlways)
	}
	saved := saveBytes(t, s)
	const hdrLen = 56 // package snapshot's image header
	reject := func(name string, img []byte) {
		t.Helper()
		l, err := Load(bytes.NewReader(img), testOptions())
		if !errors.Is(err, ErrCorrupt) || l != nil {
			t.Errorf("%s: Load = %v; want ErrCorrupt", name, err)
			if l != nil {
				l.Close()
			}
		}
	}
	for _, n := range []int{0, 1, 8, 16, hdrLen - 1, hdrLen, hdrLen + 5000, len(saved) - 17, len(saved) - 1} {
		reject(fmt.Sprintf("truncated to %d of %d bytes", n, len(saved)), saved[:n])
		if _, err := Load(bytes.NewReader(saved[:n]), testOptions()); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("truncated to %d: %v does not say so", n, err)
		}
	}
	r := rand.New(rand.NewPCG(6, 0))
	for _, at := range []int{0, 9, 13, 20, hdrLen - 5, hdrLen + 3, hdrLen + 5000, len(saved) - 20, len(saved) - 14, len(saved) - 10, len(saved) - 3, r.IntN(len(saved))} {
		bad := bytes.Clone(saved)
		bad[at] ^= 0x40
		reject(fmt.Sprintf("bit flipped at %d", at), bad)
	}
	reject("random bytes", func() []byte {
		b := make([]byte, 4096)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}())
	// Images whose checksums hold but whose structure does not: what a
	// crafted file could hold.
	crafted := map[string]func(c craft){
		"a bucket points past the allocator": func(c craft) {
			b, _ := c.firstRecord(t)
			c.put64(t, b, tagPtr(1<<46, 100))
		},
		"a bucket points into a record": func(c craft) {
			b, rec := c.firstRecord(t)
			c.put64(t, b, tagPtr(rec+16, 100))
		},
		"a record's hash is not its key's": func(c craft) {
			_, rec := c.firstRecord(t)
			c.flip(t, rec+recHash)
		},
		"a record's length is not its pointer's": func(c craft) {
			_, rec := c.firstRecord(t)
			c.flip(t, rec+recVlen)
		},
		"a chain loops": func(c craft) {
			b, rec := c.firstRecord(t)
			c.put64(t, rec+recNext, c.u64(t, b))
		},
		"two buckets share a record": func(c craft) {
			b, _ := c.firstRecord(t)
			for o := cow.Addr(8); ; o += 8 {
				if c.u64(t, b+o) == 0 {
					c.put64(t, b+o, c.u64(t, b))
					return
				}
			}
		},
		"the key count is off": func(c craft) {
			hdr, d := c.shard(t, 0)
			c.put64(t, hdr+shCount, d.count+1)
		},
		"the table is not a block": func(c craft) {
			hdr, d := c.shard(t, 1)
			c.put64(t, hdr+shT0, uint64(d.t[0].addr+16))
		},
		"a TTL entry points elsewhere": func(c craft) {
			for i := 0; ; i++ {
				_, d := c.shard(t, i)
				if d.ttlLen >= 2 {
					c.put64(t, d.ttl, c.u64(t, d.ttl+8))
					return
				}
			}
		},
		"a record's block is free": func(c craft) {
			_, rec := c.firstRecord(t)
			if err := c.s.slab.Load().a.Free(rec); err != nil {
				t.Fatal(err)
			}
		},
		"the allocator's header is damaged": func(c craft) {
			c.flip(t, c.s.slab.Load().a.Root()+9)
		},
		"the superblock names no allocator": func(c craft) {
			c.superblock(t, func(sb *superblock) { sb.slab += 1 << 20 })
		},
		"the allocator's reservation covers the root": func(c craft) {
			c.superblock(t, func(sb *superblock) { sb.slabLen = 1 << 46 })
		},
		"the superblock's checksum": func(c craft) {
			c.flip(t, c.s.root+supSeed)
		},
	}
	for name, edit := range crafted {
		l, err := Load(bytes.NewReader(saved), testOptions())
		if err != nil {
			t.Fatal(err)
		}
		edit(craft{l})
		var img bytes.Buffer
		if _, err := snapshot.Save(&img, l.sp, snapshot.Options{}); err != nil {
			t.Fatal(err)
		}
		l.Close()
		reject(name, img.Bytes())
	}
	// The image itself still loads.
	loadContents(t, saved)
}

func TestSaveFileCrashSafe(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dump.kv")
	s := openTest(t, testOptions())
	old := fill(t, s, 2000, rand.New(rand.NewPCG(7, 0)))
	if err := s.SaveFile(path); err != nil {
		t.Fatal(err)
	}
	s.Put([]byte("key-1"), []byte("changed"))
	// A save that fails half way leaves the old image and no temp file.
	_, err := s.saveFile(path, SaveOptions{}, func(w io.Writer) io.Writer { return &failAfter{w: w, n: 100 << 10} })
	if !errors.Is(err, errInjected) {
		t.Fatalf("failing save: %v", err)
	}
	checkFile(t, path, old)
	if m, _ := filepath.Glob(path + ".tmp-*"); len(m) != 0 {
		t.Fatalf("temp files left: %v", m)
	}
	if st := s.Stats(); st.LastSaveErr == nil || st.SaveErrors != 1 || st.Saves != 1 {
		t.Fatalf("stats after a failed save: %+v", st)
	}
	// A process killed in the middle of a save leaves the old image too.
	if os.Getenv("SNAPDB_CRASH_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSaveFileCrashChild$")
		cmd.Env = append(os.Environ(), "SNAPDB_CRASH_CHILD="+path)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee) && ee.ExitCode() == crashExit:
			checkFile(t, path, old)
		case err != nil && !errors.As(err, &ee):
			t.Logf("cannot run a child process here (%v): the crash part is skipped", err)
		default:
			t.Fatalf("the child did not crash mid-save: %v\n%s", err, out)
		}
	}
	// And a save that completes replaces it.
	if err := s.SaveFile(path); err != nil {
		t.Fatal(err)
	}
	old["key-1"] = "changed"
	checkFile(t, path, old)
}

const crashExit = 42

// TestSaveFileCrashChild is the child of TestSaveFileCrashSafe: it starts a
// save over the image and exits in its middle, as a crash would (no
// deferred cleanup, nothing flushed).
func TestSaveFileCrashChild(t *testing.T) {
	path := os.Getenv("SNAPDB_CRASH_CHILD")
	if path == "" {
		t.Skip("run by TestSaveFileCrashSafe")
	}
	s := openTest(t, testOptions())
	fill(t, s, 3000, rand.New(rand.NewPCG(8, 0)))
	s.saveFile(path, SaveOptions{}, func(w io.Writer) io.Writer { return &failAfter{w: w, n: 200 << 10, exit: true} })
	t.Fatal("the save did not crash")
}

var errInjected = errors.New("injected write error")

// failAfter passes n bytes through, then fails (or exits the process).
type failAfter struct {
	w    io.Writer
	n    int
	exit bool
}

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		if f.exit {
			f.w.Write(p[:f.n])
			os.Exit(crashExit)
		}
		n, _ := f.w.Write(p[:f.n])
		f.n = 0
		return n, errInjected
	}
	f.n -= len(p)
	return f.w.Write(p)
}

func checkFile(t *testing.T, path string, want map[string]string) {
	t.Helper()
	l, err := LoadFile(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := sameContents(contents(t, l.Range), want); err != nil {
		t.Fatal(err)
	}
}
