// Command snapshotdb is the demo of examples/snapshotdb/store: an
// in-memory key-value store that snapshots its whole state with a Fork in
// microseconds and saves it in the background while writers go on at full
// speed, as Redis does with fork(2). The same data and writers then run
// over the two ways Go programs do this today: a deep copy of a Go map and
// github.com/tidwall/btree's Copy(). For each it prints the snapshot pause,
// the save time, write throughput and latency before and during the save,
// the bytes copied, and peak memory.
//
//	go run ./examples/snapshotdb                    # ~256 MiB of values
//	go run ./examples/snapshotdb -size 16777216     # a quick run
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/anonfolio/anonfolio/examples/snapshotdb/store"
	"github.com/anonfolio/anonfolio/folio"
)

type config struct {
	noHugePage, populate bool
	keys, value, writers int
	measure              time.Duration
	dir                  string
}

func main() {
	size := flag.Int64("size", 256<<20, "bytes of values to load (keys = size/value unless -keys is given)")
	keys := flag.Int("keys", 0, "number of keys")
	value := flag.Int("value", 256, "bytes per value")
	writers := flag.Int("writers", 2, "writer goroutines during the measurements")
	measure := flag.Duration("measure", time.Second, "how long writers run before the save is measured")
	dir := flag.String("dir", "", "directory for the dump files (default: a temporary one)")
	only := flag.String("only", "", "run only this engine: store, map or btree")
	noHugePage := flag.Bool("nohugepage", false, "advise MADV_NOHUGEPAGE on the store's arena instead of MADV_HUGEPAGE")
	populate := flag.Bool("populate", false, "prefault the store's whole arena up front (folio.Config.Populate)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the measurements to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	cfg := config{noHugePage: *noHugePage, populate: *populate, keys: *keys, value: *value, writers: *writers, measure: *measure, dir: *dir}
	if cfg.keys == 0 {
		cfg.keys = int(*size / int64(cfg.value))
	}
	if cfg.keys <= 0 || cfg.value <= 0 || cfg.writers <= 0 {
		log.Fatal("-keys, -value and -writers must be positive")
	}
	if cfg.dir == "" {
		d, err := os.MkdirTemp("", "snapshotdb")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		cfg.dir = d
	}
	fmt.Printf("%d keys of %d-byte values (%d MiB), %d writers overwriting random keys, on %s/%s with %d CPUs\n",
		cfg.keys, cfg.value, int64(cfg.keys)*int64(cfg.value)>>20, cfg.writers, runtime.GOOS, runtime.GOARCH, runtime.NumCPU())

	engines := []func() (engine, error){
		func() (engine, error) {
			// Room for the slab (items rounded up to their size class),
			// the index, and as much again for the pages copied during a
			// save: the reservation is virtual, pages are touched on use.
			item := int64(cfg.value + 24)
			arena := 2*(int64(cfg.keys)*(item+item/4)+int64(cfg.keys)*32) + 64<<20
			s, err := store.Open(store.Options{
				Arena:    folio.Config{Size: arena, NoHugePage: cfg.noHugePage, Populate: cfg.populate},
				Capacity: cfg.keys,
			})
			return &storeEngine{s}, err
		},
		func() (engine, error) { return &mapEngine{m: make(map[string][]byte, cfg.keys)}, nil },
		func() (engine, error) { return newBtreeEngine(), nil },
	}
	names := []string{"store", "map", "btree"}
	var results []result
	for i, mk := range engines {
		if *only != "" && *only != names[i] {
			continue
		}
		e, err := mk()
		if err != nil {
			log.Fatal(err)
		}
		r, err := run(e, cfg)
		e.close()
		if err != nil {
			log.Fatalf("%s: %v", e.name(), err)
		}
		results = append(results, r)
		runtime.GC()
		debug.FreeOSMemory()
	}
	report(results)
}

// result is what one engine measured.
type result struct {
	name                 string
	load                 time.Duration
	pause, save          time.Duration
	before, during       phase
	copied               int64
	copiedWhat           string
	peakArena            int64 // the store only: its arena's peak in use
	hwm                  int64 // the process's VmHWM over the run
	saveBytes            int64
	residentAfterLoadRSS int64
}

// phase is what the writers did in a window.
type phase struct {
	ops  uint64
	took time.Duration
	hist histogram
}

func (p phase) rate() float64 { return float64(p.ops) / p.took.Seconds() }

// run loads the data into e, measures the writers alone, then during a
// background save.
func run(e engine, cfg config) (result, error) {
	r := result{name: e.name()}
	resetPeakRSS()
	rng := rand.New(rand.NewPCG(1, 2))
	val := make([]byte, cfg.value)
	start := time.Now()
	for i := range cfg.keys {
		binary64(val, rng.Uint64())
		if err := e.put(appendKey(nil, i), val); err != nil {
			return r, err
		}
	}
	r.load = time.Since(start)
	r.residentAfterLoadRSS = procStatus("VmRSS")

	var peak atomic.Int64
	stopSampler := sampleArena(e, &peak)
	var err error
	r.before, err = writers(e, cfg, func() { time.Sleep(cfg.measure) })
	if err != nil {
		return r, err
	}
	var saveErr error
	r.during, err = writers(e, cfg, func() {
		f, ferr := os.Create(filepath.Join(cfg.dir, "dump"))
		if ferr != nil {
			saveErr = ferr
			return
		}
		defer f.Close()
		w := bufio.NewWriterSize(f, 256<<10)
		t0 := time.Now()
		r.pause, r.copied, saveErr = e.save(w)
		if saveErr == nil {
			saveErr = w.Flush()
		}
		r.save = time.Since(t0)
		if fi, err := f.Stat(); err == nil {
			r.saveBytes = fi.Size()
		}
	})
	stopSampler()
	if err == nil {
		err = saveErr
	}
	r.peakArena = peak.Load()
	r.hwm = procStatus("VmHWM")
	switch e.(type) {
	case *storeEngine:
		r.copiedWhat = "pages the store copied (COW) during the save"
	case *mapEngine:
		r.copiedWhat = "the deep copy"
	case *btreeEngine:
		r.copiedWhat = "Go heap allocated during the save (copied nodes and the writers' values)"
	}
	return r, err
}

// sampleArena records the store's arena peak (the store's pages plus what
// the snapshot alone holds) every millisecond until the returned func is
// called.
func sampleArena(e engine, peak *atomic.Int64) func() {
	se, ok := e.(*storeEngine)
	if !ok {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if b := se.s.Stats().ArenaBytes; b > peak.Load() {
				peak.Store(b)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// writers runs cfg.writers goroutines overwriting random keys until
// during returns, timing every write.
func writers(e engine, cfg config, during func()) (phase, error) {
	var stop atomic.Bool
	var wg sync.WaitGroup
	hists := make([]histogram, cfg.writers)
	errs := make([]error, cfg.writers)
	start := time.Now()
	for w := range cfg.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			val := make([]byte, cfg.value)
			var k []byte
			for !stop.Load() {
				binary64(val, rng.Uint64())
				k = appendKey(k[:0], rng.IntN(cfg.keys))
				t0 := time.Now()
				if err := e.put(k, val); err != nil {
					errs[w] = err
					return
				}
				hists[w].add(time.Since(t0))
			}
		}()
	}
	during()
	stop.Store(true)
	wg.Wait()
	p := phase{took: time.Since(start)}
	for i := range hists {
		p.hist.merge(&hists[i])
	}
	p.ops = p.hist.n
	for _, err := range errs {
		if err != nil {
			return p, err
		}
	}
	return p, nil
}

// appendKey appends key number i: "key:" and 12 digits.
func appendKey(b []byte, i int) []byte {
	b = append(b, "key:000000000000"...)
	for j := len(b) - 1; i > 0; j, i = j-1, i/10 {
		b[j] = byte('0' + i%10)
	}
	return b
}

// binary64 stamps x over the start of v, so each write differs.
func binary64(v []byte, x uint64) {
	for i := 0; i < 8 && i < len(v); i++ {
		v[i] = byte(x >> (8 * i))
	}
}

func report(rs []result) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(label string, f func(r result) string) {
		fmt.Fprintf(tw, "%s\t", label)
		for _, r := range rs {
			fmt.Fprintf(tw, "%s\t", f(r))
		}
		fmt.Fprintln(tw)
	}
	fmt.Println()
	row("", func(r result) string { return r.name })
	row("load", func(r result) string { return r.load.Round(time.Millisecond).String() })
	row("snapshot pause (Fork / deep copy / Copy)", func(r result) string { return dur(r.pause) })
	row("background save", func(r result) string { return r.save.Round(time.Millisecond).String() })
	row("image", func(r result) string { return mib(r.saveBytes) })
	row("writes/s before the save", func(r result) string { return fmt.Sprintf("%.0f", r.before.rate()) })
	row("writes/s during the save", func(r result) string { return fmt.Sprintf("%.0f", r.during.rate()) })
	row("write p50 before / during", func(r result) string {
		return dur(r.before.hist.percentile(50)) + " / " + dur(r.during.hist.percentile(50))
	})
	row("write p99 before / during", func(r result) string {
		return dur(r.before.hist.percentile(99)) + " / " + dur(r.during.hist.percentile(99))
	})
	row("write max during", func(r result) string { return dur(r.during.hist.percentile(100)) })
	row("bytes copied (see below)", func(r result) string { return mib(r.copied) })
	row("peak arena in use (store + snapshot)", func(r result) string {
		if r.peakArena == 0 {
			return "-"
		}
		return mib(r.peakArena)
	})
	row("process VmRSS after load", func(r result) string { return mib(r.residentAfterLoadRSS) })
	row("process VmHWM (peak RSS) over the run", func(r result) string { return mib(r.hwm) })
	tw.Flush()
	fmt.Println()
	for _, r := range rs {
		fmt.Printf("bytes copied, %s: %s\n", r.name, r.copiedWhat)
	}
	fmt.Println("VmHWM is reset (clear_refs) before each engine; it counts the whole process, Go heap and arena.")
	fmt.Println("Percentiles are within 1/8 (log-linear histogram of every write).")
}

func dur(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fµs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	}
	return d.Round(time.Millisecond).String()
}

func mib(b int64) string {
	if b < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}
