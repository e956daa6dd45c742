package folio_test

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
)

// rssBytes returns the process's resident memory from /proc/self/statm, or
// skips the benchmark where there is none.
func rssBytes(b *testing.B) float64 {
	b.Helper()
	raw, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		b.Skip("no /proc/self/statm:", err)
	}
	f := strings.Fields(string(raw))
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return float64(pages) * float64(os.Getpagesize())
}

// BenchmarkArenaRSS: what an arena costs in resident memory. A 1 GiB
// arena is reserved (MAP_NORESERVE, no THP so that the figures count
// 4 KiB pages), then a space writes 64 MiB into it, then the space closes
// and the arena returns what it freed (Scavenge). Reported, from the
// process's RSS (/proc/self/statm) after a GC at each step: the RSS the
// reservation itself costs, per GiB reserved (the page descriptors, 16.4
// bytes per 4 KiB page, once touched); the RSS beyond the data per MiB
// written (page tables, and the descriptors of the pages used); and what
// stays resident once the space is closed and the memory scavenged.
//
//	go test -run XXX -bench ArenaRSS -benchtime 3x ./folio
func BenchmarkArenaRSS(b *testing.B) {
	const reserve, written = 1 << 30, 64 << 20
	var reserved, overhead, after float64
	chunk := make([]byte, 1<<20) // the data, allocated before any RSS is read
	for i := range chunk {
		chunk[i] = byte(i) | 1
	}
	for b.Loop() {
		runtime.GC()
		base := rssBytes(b)
		a, err := folio.NewArena(folio.Config{Size: reserve, PageSize: 4096, NoHugePage: true})
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		empty := rssBytes(b)
		s, err := cow.NewSpace(a, cow.Options{Orders: cow.Orders()})
		if err != nil {
			b.Fatal(err)
		}
		addr, err := s.Map(written, cow.ProtRead|cow.ProtWrite)
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; off < written; off += len(chunk) {
			if _, err := s.WriteAt(chunk, int64(addr)+int64(off)); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		full := rssBytes(b)
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		a.Scavenge(0)
		runtime.GC()
		closed := rssBytes(b)
		if err := a.Close(); err != nil {
			b.Fatal(err)
		}
		reserved += (empty - base) / (1 << 20) / (reserve >> 30)
		overhead += (full - empty - written) / (written >> 20) / 1024
		after += (closed - empty) / (1 << 20)
	}
	n := float64(b.N)
	b.ReportMetric(reserved/n, "rss-MiB/GiB-reserved")
	b.ReportMetric(overhead/n, "extra-KiB/MiB-written")
	b.ReportMetric(after/n, "rss-MiB-after-close")
}
