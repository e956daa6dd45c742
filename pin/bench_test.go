package pin

import (
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
	mmfolio "github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/rounds"
	"github.com/anonfolio/anonfolio/internal/spacetest"
)

// The benchmarks of issue 4. Each reports ns/folio and ns/page, and the
// ratio to the floor measured in the same run: one FolioTryPin plus one
// FolioUnpin on the same folio (the two atomics a pin cannot avoid).
//
//	go test -run XXX -bench . ./pin

// benchSpace maps and populates one folio of 2^order pages and returns its
// space and address.
func benchSpace(b testing.TB, orderOf func(folio.Geometry) int) (*cow.Space, cow.Addr, int) {
	e := spacetest.New(b, 64<<20, 0)
	order := orderOf(e.A.Geometry())
	s := e.Space(cow.Options{Orders: cow.Orders(order)})
	n := (1 << order) * s.PageSize()
	addr := e.Map(s, 4<<20, cow.ProtRead|cow.ProtWrite)
	addr = (addr + cow.Addr(2<<20) - 1) &^ cow.Addr(2<<20-1)
	e.Write(s, addr, spacetest.Fill('b', n))
	return s, addr, n
}

// folioSizes are the cases of the issue: a 4 KiB page, a 64 KiB folio (a
// contpte block) and a 2 MiB folio (a huge entry).
var folioSizes = []struct {
	name  string
	order func(folio.Geometry) int
}{
	{"4KiB", func(folio.Geometry) int { return 0 }},
	{"64KiB", func(g folio.Geometry) int { return g.ContOrder }},
	{"2MiB", func(g folio.Geometry) int { return g.PMDOrder }},
}

func BenchmarkPin(b *testing.B) {
	floor := pinFloor(b)
	for _, fs := range folioSizes {
		for _, m := range pinModes {
			b.Run(fs.name+"/"+m.name, func(b *testing.B) {
				s, addr, n := benchSpace(b, fs.order)
				b.ResetTimer()
				for range b.N {
					p := new(Pages)
					if err := p.take(s, addr, n, m.flags, m.pin); err != nil {
						b.Fatal(err)
					}
					p.Release()
				}
				report(b, n/s.PageSize(), floor)
			})
		}
	}
}

// BenchmarkPinContended: two goroutines pin and release the same folio
// (the refcount and pincount cache lines bounce between the cores).
func BenchmarkPinContended(b *testing.B) {
	floor := pinFloor(b)
	for _, fs := range folioSizes {
		b.Run(fs.name, func(b *testing.B) {
			s, addr, n := benchSpace(b, fs.order)
			b.SetParallelism(1) // GOMAXPROCS goroutines: 2 on the reference machine
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p, err := Pin(s, addr, n, Write)
					if err != nil {
						b.Error(err)
						return
					}
					p.Release()
				}
			})
			report(b, n/s.PageSize(), floor)
		})
	}
}

// pinFloor measures FolioTryPin+FolioUnpin of one folio, in ns: the best
// of three timed loops (testing.Benchmark cannot nest in a benchmark).
func pinFloor(b *testing.B) float64 {
	pa, err := folio.NewArena(folio.Config{Size: 8 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer pa.Close()
	a := engine(pa)
	head, err := a.AllocFolio(0, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer a.FolioPut(head, 1)
	const loops = 1 << 20
	best := time.Duration(1 << 62)
	for range 3 {
		start := time.Now()
		for range loops {
			if _, ok := a.FolioTryPin(head); !ok {
				b.Fatal("TryPin failed")
			}
			a.FolioUnpin(head, 1)
		}
		best = min(best, time.Since(start))
	}
	return float64(best.Nanoseconds()) / loops
}

func report(b *testing.B, pages int, floor float64) {
	per := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(per, "ns/folio")
	b.ReportMetric(per/float64(pages), "ns/page")
	b.ReportMetric(per/floor, "x-floor")
}

// BenchmarkPinReuse is issue 14's goal for pins: Pin and Release of a
// reused Pages value on the fast path (Get and Release for getFast),
// against the floor measured in the same interleaved rounds: one
// FolioTryPinN of the run's pages and one FolioUnpin of the same folio
// (FolioTryGetN and FolioPut for a Get), the atomics a pin cannot avoid.
// A third contender takes a new *Pages each time (new-ns/pin), as the
// functions Pin and Get do. Reported: the medians (ns/pin, floor-ns/pin,
// new-ns/pin), the median of the rounds' ratios to the floor with its 10th
// and 90th percentiles (x-floor, new-x-floor), and the heap allocations of
// one Pin and Release of the reused value (allocs/pin: 0 in the default
// build; race and invariants builds register every Pages).
//
//	go test -run XXX -bench PinReuse -benchtime 200x ./pin
func BenchmarkPinReuse(b *testing.B) {
	const loops = 1000
	for _, fs := range folioSizes {
		for _, m := range pinModes[:3] {
			b.Run(fs.name+"/"+m.name, func(b *testing.B) {
				s, addr, n := benchSpace(b, fs.order)
				a := engine(s.Arena())
				me, _ := s.Pagemap(addr)
				pfn := mmfolio.PFN(me.PFN)
				head, _, _ := a.PageFolio(pfn)
				pages := n / s.PageSize()
				var p Pages
				one := m.cycle(b, &p, s, addr, n)
				floor := func() {
					if m.pin {
						a.FolioTryPinN(pfn, pages)
						a.FolioUnpin(head, pages)
					} else {
						a.FolioTryGetN(pfn, pages)
						a.FolioPut(head, pages)
					}
				}
				// The function Pin (or Get) and Release, a new *Pages each
				// time: what a caller without a value of its own pays.
				fresh := func() {
					q := new(Pages)
					m.cycle(b, q, s, addr, n)()
				}
				r := rounds.New("floor", "pin", "new")
				for b.Loop() {
					f := rounds.Time(func() {
						for range loops {
							floor()
						}
					})
					o := rounds.Time(func() {
						for range loops {
							one()
						}
					})
					nw := rounds.Time(func() {
						for range loops {
							fresh()
						}
					})
					r.Add(f/loops, o/loops, nw/loops)
				}
				r.Report(b, "ns/pin")
				b.ReportMetric(testing.AllocsPerRun(100, one), "allocs/pin")
			})
		}
	}
}

// pinMode is one way to take pages: the benchmarks' and the allocation
// test's matrix.
type pinMode struct {
	name  string
	flags Flags
	pin   bool
}

// pinModes: the fast path, read-write and read-only, a fast Get, and the
// slow path.
var pinModes = []pinMode{
	{"fast", FastOnly | Write, true},
	{"fastRO", FastOnly, true},
	{"getFast", FastOnly, false},
	{"slow", SlowOnly | Write, true},
}

// cycle returns a function that takes [addr, addr+n) of s into p as m
// says (Pin or Get) and releases it.
func (m pinMode) cycle(tb testing.TB, p *Pages, s *cow.Space, addr cow.Addr, n int) func() {
	return func() {
		var err error
		if m.pin {
			err = p.Pin(s, addr, n, m.flags)
		} else {
			err = p.Get(s, addr, n, m.flags)
		}
		if err != nil {
			tb.Fatal(err)
		}
		p.Release()
	}
}

// BenchmarkForkPinned: what one pin costs the next Fork. A Fork copies, for
// the child, every exclusive page of a folio that holds a pin
// (copy_present_page), so a 4 KiB pin inside a 2 MiB folio makes each Fork
// copy the whole folio, where a Fork of the same space with no pin copies
// nothing. Each round times a Fork (and closes the child) with no pin, then
// with 4 KiB of the folio pinned. Reported: the medians (ns/fork for the
// pinned case, unpinned-ns/fork), the ratio (x-unpinned, with its 10th and
// 90th percentiles) and the bytes the pinned Fork copied (copied-bytes/fork).
//
//	go test -run XXX -bench ForkPinned -benchtime 50x ./pin
func BenchmarkForkPinned(b *testing.B) {
	for _, fs := range folioSizes {
		b.Run(fs.name, func(b *testing.B) {
			s, addr, _ := benchSpace(b, fs.order)
			fork := func() float64 {
				var c *cow.Space
				var err error
				d := rounds.Time(func() { c, err = s.Fork() })
				if err != nil {
					b.Fatal(err)
				}
				c.Close()
				return d
			}
			var p Pages
			r := rounds.New("unpinned", "pinned")
			var copied uint64
			for b.Loop() {
				free := fork()
				if err := p.Pin(s, addr, s.PageSize(), Write); err != nil {
					b.Fatal(err)
				}
				before := s.Stats().ForkCopies
				pinned := fork()
				copied += s.Stats().ForkCopies - before
				p.Release()
				r.Add(free, pinned)
			}
			r.Report(b, "ns/fork")
			b.ReportMetric(float64(copied)*float64(s.PageSize())/float64(r.Len()), "copied-bytes/fork")
		})
	}
}
