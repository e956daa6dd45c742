package folio

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/anonfolio/anonfolio/internal/testhook"
)

// newTestArena returns an arena of size bytes that the test closes, checking
// on the way that everything was given back.
func newTestArena(t testing.TB, cfg Config) *Arena {
	t.Helper()
	a, err := NewArena(cfg)
	if err != nil {
		t.Fatalf("NewArena(%+v): %v", cfg, err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return a
}

func TestNewArenaRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"negative size", Config{Size: -1, PageSize: 4096}},
		{"page size not a power of two", Config{Size: 1 << 20, PageSize: 12288}},
		{"page size below 4 KiB", Config{Size: 1 << 20, PageSize: 2048}},
		{"page size negative", Config{Size: 1 << 20, PageSize: -4096}},
		{"page size above 64 KiB", Config{Size: 1 << 20, PageSize: 128 << 10}},
		{"page size off by one", Config{Size: 1 << 20, PageSize: 4097}},
		{"max order negative", Config{Size: 1 << 20, PageSize: 4096, MaxOrder: -1}},
		{"max order above the PMD order", Config{Size: 1 << 20, PageSize: 4096, MaxOrder: 10}},
		{"max order above the PMD order of 64 KiB pages", Config{Size: 1 << 20, PageSize: 65536, MaxOrder: 14}},
		{"size beyond 2^31 pages", Config{Size: 1 << 44, PageSize: 4096}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewArena(tt.cfg)
			if !errors.Is(err, ErrInvalid) {
				if a != nil {
					a.Close()
				}
				t.Fatalf("NewArena(%+v) = %v, want ErrInvalid", tt.cfg, err)
			}
			if a != nil {
				t.Fatalf("NewArena returned an arena with an error")
			}
		})
	}
}

func TestNewArenaGeometry(t *testing.T) {
	tests := []struct {
		name string
		// Configuration:
		cfg Config
		// Expected outcome:
		pages                                  int64
		pageSize, maxOrder, pmdOrder, contPTEs int
	}{
		{"defaults of 4 KiB pages", Config{PageSize: 4096}, 1 << 18, 4096, 9, 9, 16},
		{"tiny size rounds up to one max-order block", Config{Size: 1, PageSize: 4096}, 512, 4096, 9, 9, 16},
		{"size rounds up to whole blocks", Config{Size: 3<<20 + 1, PageSize: 4096}, 1024, 4096, 9, 9, 16},
		{"small max order", Config{Size: 1 << 20, PageSize: 4096, MaxOrder: 4}, 256, 4096, 4, 9, 16},
		{"16 KiB pages", Config{Size: 64 << 20, PageSize: 16384}, 4096, 16384, 11, 11, 128},
		{"64 KiB pages", Config{Size: 512 << 20, PageSize: 65536}, 8192, 65536, 13, 13, 32},
		{"64 KiB pages, order 5", Config{Size: 8 << 20, PageSize: 65536, MaxOrder: 5}, 128, 65536, 5, 13, 32},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestArena(t, tt.cfg)
			g := a.Geometry()
			st := a.Stats()
			if st.TotalPages != tt.pages || st.FreePages != tt.pages {
				t.Errorf("pages: total %d free %d, want %d", st.TotalPages, st.FreePages, tt.pages)
			}
			if a.PageSize() != tt.pageSize || a.MaxOrder() != tt.maxOrder || g.PMDOrder != tt.pmdOrder || g.ContPTEs != tt.contPTEs {
				t.Errorf("geometry %+v, want page %d max order %d PMD order %d contpte %d",
					g, tt.pageSize, tt.maxOrder, tt.pmdOrder, tt.contPTEs)
			}
			if 1<<g.ContOrder != g.ContPTEs || g.TableEntries != g.PageSize/8 || 1<<g.PMDOrder != g.TableEntries {
				t.Errorf("inconsistent geometry %+v", g)
			}
			if uintptr(unsafe.Pointer(&a.mem[0]))%uintptr(g.FolioSize(g.MaxOrder)) != 0 {
				t.Errorf("backing %p not aligned to the largest folio (%d bytes)", &a.mem[0], g.FolioSize(g.MaxOrder))
			}
			if err := a.Check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestDefaultArenaUsesHostPages(t *testing.T) {
	a := newTestArena(t, Config{Size: 4 << 20})
	if got, want := a.PageSize(), HostPlatform().HostPageSize; got != want {
		t.Fatalf("PageSize() = %d, want the host's %d", got, want)
	}
}

func TestCloseTwiceAndBusy(t *testing.T) {
	a, err := NewArena(Config{Size: 4 << 20, PageSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	pfn, err := a.AllocFolio(3, AllocZero)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); !errors.Is(err, ErrBusy) {
		t.Fatalf("Close with a folio allocated = %v, want ErrBusy", err)
	}
	// The failed Close left the arena usable.
	a.PageBytes(pfn, 8)[0] = 1
	a.FolioPut(pfn, 1)

	id, err := a.NewMMID()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); !errors.Is(err, ErrBusy) {
		t.Fatalf("Close with a live space = %v, want ErrBusy", err)
	}
	a.FreeMMID(id)

	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := a.AllocFolio(0, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("AllocFolio after Close = %v, want ErrClosed", err)
	}
	if _, err := a.NewMMID(); !errors.Is(err, ErrClosed) {
		t.Fatalf("NewMMID after Close = %v, want ErrClosed", err)
	}
	if n := a.Scavenge(0); n != 0 {
		t.Fatalf("Scavenge after Close released %d bytes", n)
	}
}

func TestAllocFolioBadOrder(t *testing.T) {
	a := newTestArena(t, Config{Size: 4 << 20, PageSize: 4096, MaxOrder: 4})
	for _, order := range []int{-1, 5, 9, 100} {
		if _, err := a.AllocFolio(order, 0); !errors.Is(err, ErrInvalid) {
			t.Errorf("AllocFolio(%d) = %v, want ErrInvalid", order, err)
		}
	}
	if st := a.Stats(); st.FreePages != st.TotalPages {
		t.Fatalf("a rejected allocation took pages: %+v", st)
	}
}

func TestMMIDs(t *testing.T) {
	a := newTestArena(t, Config{Size: 2 << 20, PageSize: 4096})
	seen := map[MMID]bool{}
	var ids []MMID
	for range MaxMMIDs {
		id, err := a.NewMMID()
		if err != nil {
			t.Fatalf("NewMMID #%d: %v", len(ids), err)
		}
		if id == 0 || int(id) > MaxMMIDs || seen[id] {
			t.Fatalf("NewMMID returned %d (zero, out of range or repeated)", id)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	if _, err := a.NewMMID(); !errors.Is(err, ErrNoMemory) {
		t.Fatalf("NewMMID past the limit = %v, want ErrNoMemory", err)
	}
	a.FreeMMID(ids[100])
	id, err := a.NewMMID()
	if err != nil || id != ids[100] {
		t.Fatalf("NewMMID after a free = %d, %v; want the freed id %d", id, err, ids[100])
	}
	if got := a.Stats().Spaces; got != MaxMMIDs {
		t.Fatalf("Stats().Spaces = %d, want %d", got, MaxMMIDs)
	}
	for _, id := range ids {
		a.FreeMMID(id)
	}
}

func TestPlatform(t *testing.T) {
	p := HostPlatform()
	if p.HostPageSize < 4096 || p.HostPageSize&(p.HostPageSize-1) != 0 {
		t.Errorf("host page size %d", p.HostPageSize)
	}
	if p.GOARCH == "" || p.Cores < 1 || p.CPU == "" {
		t.Errorf("incomplete platform %+v", p)
	}
	s := p.String()
	if !strings.Contains(s, p.GOARCH) || !strings.Contains(s, "cpu:") {
		t.Errorf("String() = %q", s)
	}
	for _, tt := range []struct{ in, want string }{
		{"always [madvise] never", "madvise"},
		{"[always] madvise never", "always"},
		{"always inherit madvise [never]", "never"},
		{"", ""},
		{"garbage", ""},
	} {
		if got := bracketed(tt.in); got != tt.want {
			t.Errorf("bracketed(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMetadataOverhead(t *testing.T) {
	if s := unsafe.Sizeof(page{}); s != 16 {
		t.Fatalf("page descriptor is %d bytes, the package doc promises 16", s)
	}
	for _, ps := range []int{4096, 16384, 65536} {
		perPage := 16.0 + 3.0/8 // descriptor + three bitmaps
		if pct := 100 * perPage / float64(ps); pct > 0.5 {
			t.Errorf("metadata overhead with %d-byte pages is %.3f%%, above 0.5%%", ps, pct)
		}
	}
}

// TestCloseWaitsForScavenge: a Scavenge in its madvise holds a free block
// off the lists (still counted free), so Close saw nothing busy and
// unmapped the memory under it; the madvise then hit unmapped memory, or a
// new mapping at the same address. Close must wait for it.
func TestCloseWaitsForScavenge(t *testing.T) {
	a, err := NewArena(Config{Size: 4 << 20, PageSize: 4096, RetainFree: -1})
	if err != nil {
		t.Fatal(err)
	}
	pfn, err := a.AllocFolio(9, AllocZero) // touch it: resident once freed
	if err != nil {
		t.Fatal(err)
	}
	a.FolioPut(pfn, 1)
	closed := make(chan error, 1)
	var early bool
	inMadvise := testhook.NewOnce(func() {
		go func() { closed <- a.Close() }()
		select {
		case err := <-closed:
			early = true
			closed <- err
		case <-time.After(200 * time.Millisecond):
		}
	})
	restore := testhook.Set(testhook.ScavengeMadvise, inMadvise.Run)
	a.Scavenge(0)
	restore()
	if !inMadvise.Ran() {
		t.Fatal("the interleaving did not happen: Scavenge released nothing")
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if early {
		t.Fatal("Close returned while a Scavenge was returning memory to the kernel")
	}
}
