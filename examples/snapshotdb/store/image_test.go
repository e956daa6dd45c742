package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
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
	if again := saveBytes(t, l); !bytes.Equal(again, image) {
		t.Fatal("a loaded store saves a different image")
	}
	l.Put([]byte("new"), []byte("value"))
	model["new"] = "value"
	checkStore(t, l, model)
}

// TestSaveUnderWrites saves while writers go on. Each writer owns its keys
// and logs its operations in order; since the Fork is atomic with respect to
// every Put and Delete, the image must be, for each writer, its keys'
// initial state plus exactly a prefix of its log.
func TestSaveUnderWrites(t *testing.T) {
	const writers = 3
	keys, rounds := 3000, 3
	if testing.Short() {
		keys, rounds = 1500, 2
	}
	s := openTest(t, testOptions())
	model := fill(t, s, keys, rand.New(rand.NewPCG(4, 0)))
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
		err := s.Save(&image)
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		got := loadContents(t, image.Bytes())
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

// image is a saved image with a map of its regions, to edit in place.
type image struct {
	b       []byte
	regions []region
}

func parseImage(t testing.TB, b []byte) *image {
	t.Helper()
	rs, _, err := decodeRegions(b[:imageHeaderLen(3)])
	if err != nil {
		t.Fatal(err)
	}
	return &image{b, rs}
}

// at returns the offset in the image of the byte at addr.
func (im *image) at(t testing.TB, addr cow.Addr) int {
	t.Helper()
	off := imageHeaderLen(len(im.regions))
	for _, r := range im.regions {
		if addr >= r.addr && uint64(addr-r.addr) < r.stored {
			return off + int(addr-r.addr)
		}
		off += int(r.stored)
	}
	t.Fatalf("%#x is not stored in the image", addr)
	return 0
}

func (im *image) u64(t testing.TB, addr cow.Addr) uint64 {
	return binary.LittleEndian.Uint64(im.b[im.at(t, addr):])
}

func (im *image) put64(t testing.TB, addr cow.Addr, v uint64) {
	binary.LittleEndian.PutUint64(im.b[im.at(t, addr):], v)
}

// shard returns the header of shard i.
func (im *image) shard(t testing.TB, i int) (cow.Addr, dictState) {
	ps := cow.Addr(binary.LittleEndian.Uint32(im.b[im.at(t, im.regions[0].addr)+supPageSize:]))
	hdr := im.regions[0].addr + ps*cow.Addr(1+i)
	return hdr, decodeDict(im.b[im.at(t, hdr):])
}

// firstRecord returns the bucket and record of the first non-empty bucket
// of a shard's table 0.
func (im *image) firstRecord(t testing.TB) (bucket cow.Addr, rec cow.Addr) {
	for i := 0; ; i++ {
		_, d := im.shard(t, i)
		for b := range d.t[0].size() {
			if p := im.u64(t, d.t[0].addr+cow.Addr(b*8)); p != 0 {
				return d.t[0].addr + cow.Addr(b*8), cow.Addr(p & addrMask)
			}
		}
	}
}

// rechecksum recomputes both checksums of an image edited in place.
func (im *image) rechecksum() {
	end := imageHeaderLen(len(im.regions)) - 8
	binary.LittleEndian.PutUint32(im.b[end:], crc32.Checksum(im.b[:end], castagnoli))
	body := len(im.b) - trailerLen
	binary.LittleEndian.PutUint32(im.b[body:], crc32.Checksum(im.b[:body], castagnoli))
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
	hdrLen := imageHeaderLen(3)
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
	crafted := map[string]func(im *image){
		"a bucket points past the slab": func(im *image) {
			b, _ := im.firstRecord(t)
			im.put64(t, b, tagPtr(1<<40, 100))
		},
		"a bucket points into a record": func(im *image) {
			b, rec := im.firstRecord(t)
			im.put64(t, b, tagPtr(rec+16, 100))
		},
		"a record's hash is not its key's": func(im *image) {
			_, rec := im.firstRecord(t)
			im.b[im.at(t, rec+recHash)] ^= 1
		},
		"a record's length is not its pointer's": func(im *image) {
			_, rec := im.firstRecord(t)
			im.b[im.at(t, rec+recVlen)] ^= 1
		},
		"a chain loops": func(im *image) {
			b, rec := im.firstRecord(t)
			im.put64(t, rec+recNext, im.u64(t, b))
		},
		"two buckets share a record": func(im *image) {
			b, _ := im.firstRecord(t)
			for o := cow.Addr(8); ; o += 8 {
				if im.u64(t, b+o) == 0 {
					im.put64(t, b+o, im.u64(t, b))
					return
				}
			}
		},
		"the key count is off": func(im *image) {
			hdr, d := im.shard(t, 0)
			im.put64(t, hdr+shCount, d.count+1)
		},
		"the table is not a block": func(im *image) {
			hdr, d := im.shard(t, 1)
			im.put64(t, hdr+shT0, uint64(d.t[0].addr+16))
		},
		"a TTL entry points elsewhere": func(im *image) {
			for i := 0; ; i++ {
				_, d := im.shard(t, i)
				if d.ttlLen >= 2 {
					im.put64(t, d.ttl, im.u64(t, d.ttl+8))
					return
				}
			}
		},
		"a free list loops": func(im *image) {
			heap := im.regions[1].addr
			caches := cow.Addr(im.u64(t, heap+hpCaches))
			ps := cow.Addr(binary.LittleEndian.Uint32(im.b[im.at(t, im.regions[0].addr)+supPageSize:]))
			for c := range cow.Addr(4) {
				for k := range cow.Addr(nClasses) {
					at := caches + c*ps + k*classStride
					if head := im.u64(t, at); head != 0 {
						im.put64(t, cow.Addr(head), head)
						return
					}
				}
			}
			t.Fatal("no free list")
		},
		"a span changes class": func(im *image) {
			heap := im.regions[1].addr
			desc := cow.Addr(im.u64(t, heap+hpDesc))
			at := im.at(t, desc)
			binary.LittleEndian.PutUint32(im.b[at:], binary.LittleEndian.Uint32(im.b[at:])%uint32(nClasses)+1)
		},
		"a region moved": func(im *image) {
			binary.LittleEndian.PutUint64(im.b[16+2*regionEntry:], 1<<40)
		},
	}
	for name, edit := range crafted {
		im := parseImage(t, bytes.Clone(saved))
		edit(im)
		im.rechecksum()
		reject(name, im.b)
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
	err := s.saveFile(path, func(w io.Writer) io.Writer { return &failAfter{w: w, n: 100 << 10} })
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
	s.saveFile(path, func(w io.Writer) io.Writer { return &failAfter{w: w, n: 200 << 10, exit: true} })
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
