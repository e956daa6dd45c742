package bench

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"time"
)

// A Workload is one access pattern, run on memory of a given size. The
// built-in ones are in Workloads; to measure your own, set Name and Func
// (and Size, Forks if they apply) and pass it in Config.Custom.
type Workload struct {
	Name string
	// Doc says what it does and what one op is.
	Doc string
	// Forks: the workload forks, so COW policies matter to it.
	Forks bool
	// Size is the memory a custom workload works on, in bytes: a multiple
	// of 2 MiB; 0 means Config.Size. The built-in workloads use Config.Size.
	Size int64
	// Func runs a custom workload once on a fresh region (see Region). It
	// is called once per repetition under each policy, on a new space
	// each time; the built-in workloads leave it nil.
	Func func(r *Region) error

	run func(w *run) error
}

// Workloads returns every built-in workload, in the order they run.
func Workloads() []Workload { return workloads }

// WorkloadByName returns the built-in workload called name, or nil.
func WorkloadByName(name string) *Workload { return workloadByName(name) }

func workloadByName(name string) *Workload {
	for i := range workloads {
		if workloads[i].Name == name {
			return &workloads[i]
		}
	}
	return nil
}

// run is the state of one workload run: the memory, the deterministic
// random source, the pages touched, the digest of what was done and read,
// and the timings the metrics are made of.
type run struct {
	cfg  *Config
	mem  memory
	size int64
	page int // base page size: the unit of touched
	rng  *rand.Rand

	touched []uint64 // one bit per base page written
	digest  uint64   // a hash of the ops and the values read back

	ops       int64
	faultTime time.Duration // time of the phases that fault memory in
	faultMem  int64         // bytes those phases fault in
	forkLat   []time.Duration
	cowTime   time.Duration // fork churn: time of the writes to shared memory
	cowPages  int64         // pages those writes hit
	buf       []byte        // a scratch buffer of fillChunk bytes
}

const (
	fillChunk   = 64 << 10 // bytes per WriteAt of a fill, per ReadAt of a scan
	streamChunk = 1 << 20  // bytes per ReadAt when a child is streamed out
)

func newRun(cfg *Config, mem memory, size int64, page int) *run {
	return &run{
		cfg:     cfg,
		mem:     mem,
		size:    size,
		page:    page,
		rng:     rand.New(rand.NewPCG(cfg.Seed, 0x6f72646572)),
		touched: make([]uint64, (size/int64(page)+63)/64),
		digest:  fnvOffset,
		buf:     pattern(cfg.Seed),
	}
}

// pattern returns a fillChunk buffer of words derived from seed; a fill
// stamps only the first word of each chunk, so that the timed loops spend
// their time on the memory, not on making data.
func pattern(seed uint64) []byte {
	b := make([]byte, fillChunk)
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], mix(seed, uint64(i)))
	}
	return b
}

const fnvOffset = 14695981039346656037 // the digest's starting value

// mix folds v into the digest a word at a time (a multiply-rotate mix: it
// runs inside timed loops, so it must cost next to nothing).
func mix(d, v uint64) uint64 {
	d = bits.RotateLeft64((d^v)*0x9e3779b97f4a7c15, 29)
	return d * 0xbf58476d1ce4e5b9
}

func (w *run) mix(v uint64) { w.digest = mix(w.digest, v) }

// touch records a write to [off, off+n).
func (w *run) touch(off int64, n int) {
	for p := off / int64(w.page); p <= (off+int64(n)-1)/int64(w.page); p++ {
		w.touched[p/64] |= 1 << (p % 64)
	}
}

func (w *run) touchedPages() int64 {
	var n int
	for _, x := range w.touched {
		n += bits.OnesCount64(x)
	}
	return int64(n)
}

// write8 writes v at off.
func (w *run) write8(off int64, v uint64) error {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	if _, err := w.mem.WriteAt(b[:], off); err != nil {
		return err
	}
	w.touch(off, 8)
	w.mix(uint64(off))
	w.mix(v)
	return nil
}

// fill writes every byte of the memory, 64 KiB per call, each chunk
// stamped with its offset: the first touch of every page.
func (w *run) fill() error {
	start := time.Now()
	for off := int64(0); off < w.size; off += fillChunk {
		b := w.buf[:min(fillChunk, w.size-off)]
		binary.LittleEndian.PutUint64(b, uint64(off)^w.cfg.Seed)
		if _, err := w.mem.WriteAt(b, off); err != nil {
			return err
		}
		w.touch(off, len(b))
	}
	w.faultTime += time.Since(start)
	w.faultMem += w.size
	w.mix(uint64(w.size))
	return nil
}

// sample folds the first 8 bytes of every base page into the digest: what
// the memory holds, read back.
func (w *run) sample(m memory, size int64) (uint64, error) {
	d := uint64(fnvOffset)
	var b [8]byte
	for off := int64(0); off < size; off += int64(w.page) {
		if _, err := m.ReadAt(b[:], off); err != nil {
			return 0, err
		}
		d = mix(d, binary.LittleEndian.Uint64(b[:]))
	}
	return d, nil
}
