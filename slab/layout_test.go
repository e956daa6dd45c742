package slab

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
)

// TestGeometry checks every class's layout for each page size and reserve:
// blocks stay clear of the metadata, every slab's descriptor lies in its
// chunk's metadata, and locate inverts blockAddr.
func TestGeometry(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, ps := range []uint64{4 << 10, 16 << 10, 64 << 10} {
		for _, shift := range []uint{21, 24, 34, 36} {
			root := cow.Addr(1<<32 + 512<<30) // aligned to 512 GiB at most, as Map aligns to the PMD size
			g := newGeometry(root, ps, shift)
			st := &state{geo: g, cls: make([]classState, len(g.classes))}
			for i := range st.cls {
				st.cls[i].geo = g.classes[i]
			}
			for ci, cg := range g.classes {
				chunk := uint64(1) << cg.chunkShift
				switch {
				case cg.blocks == 0 || cg.perChunk == 0:
					t.Fatalf("ps %d shift %d class %d (%d B): %d blocks in %d slabs per chunk", ps, shift, ci, cg.size, cg.blocks, cg.perChunk)
				case cg.blocks*cg.size > cg.meta || cg.meta%ps != 0:
					t.Fatalf("ps %d shift %d class %d: blocks end at %d, metadata starts at %d", ps, shift, ci, cg.blocks*cg.size, cg.meta)
				case cg.meta+classHdr+cg.perChunk*descBytes > chunk:
					t.Fatalf("ps %d shift %d class %d: %d descriptors overflow the chunk", ps, shift, ci, cg.perChunk)
				case cg.slabLimit > slabsMask || cg.perChunk > 1<<cg.perShift ||
					uint64(cg.area)+cg.slabLimit>>cg.perShift<<cg.chunkShift != uint64(root)+uint64(ci+2)<<shift:
					t.Fatalf("ps %d shift %d class %d: slab numbers up to %d do not fit the area", ps, shift, ci, cg.slabLimit)
				case cg.size&(cg.size-1) == 0 && uint64(cg.area)%min(cg.size, chunk, ps*ps/8) != 0:
					t.Fatalf("ps %d shift %d class %d: %d-byte blocks not aligned", ps, shift, ci, cg.size)
				}
				for range 20 {
					s := r.Uint64N(cg.slabLimit)
					bit := r.Uint64N(slabBlocks)
					if !cg.valid(s) || cg.reserved(s)&(1<<bit) != 0 {
						continue
					}
					addr := cg.blockAddr(s, bit)
					c, s2, bit2, err := st.locate(addr)
					if err != nil || c != &st.cls[ci] || s2 != s || bit2 != bit {
						t.Fatalf("ps %d shift %d class %d: locate(blockAddr(%d, %d)) = class %p slab %d bit %d, %v", ps, shift, ci, s, bit, c, s2, bit2, err)
					}
					if _, _, _, err := st.locate(addr + 8); cg.size > 8 && !errors.Is(err, ErrNotBlock) {
						t.Fatalf("interior pointer: %v", err)
					}
					if chunk, _ := cg.split(s); cg.slabDesc(s) < cg.chunk(chunk)+cow.Addr(cg.meta+classHdr) {
						t.Fatalf("descriptor of slab %d at %#x below the metadata", s, uint64(cg.slabDesc(s)))
					}
				}
			}
		}
	}
}

// TestDivisor checks the multiplicative division against the hardware's,
// on both sides of the bound where it switches to the hardware's.
func TestDivisor(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	ds := []uint64{1, 2, 3, 7, 8, 24, 48, 80, 144, 4608, 7168, 1<<36 - 1}
	for range 200 {
		ds = append(ds, 1+r.Uint64N(1<<36))
	}
	for _, d := range ds {
		v := newDivisor(d)
		xs := []uint64{0, 1, d - 1, d, d + 1, 1<<40 - 1, (1<<40 - 1) / d * d, (1<<40-1)/d*d - 1, v.lim - 1, v.lim, ^uint64(0)}
		for range 200 {
			xs = append(xs, r.Uint64N(1<<40))
		}
		for _, x := range xs {
			if got := v.div(x); got != x/d {
				t.Fatalf("%d/%d = %d, want %d", x, d, got, x/d)
			}
		}
	}
	for c := range numClasses(1 << 33) {
		size := classSize(c)
		v := newDivisor(size)
		for _, x := range []uint64{size*1000 - 1, size * 1000, 1<<36 - 1} {
			if v.div(x) != x/size {
				t.Fatalf("class %d: %d/%d", c, x, size)
			}
		}
	}
}
