package store

import (
	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/pin"
)

// pageView is the memory of a page-aligned range held by pin.Pin or pin.Get,
// indexed by offset: direct access to a region without ReadAt or WriteAt,
// for the passes that touch all of it (rehash, validation).
type pageView struct {
	p     *pin.Pages
	pages [][]byte // one slice per page
	shift uint
}

// viewOf holds [addr, addr+n) of sp, pinned writable if write (then the
// caller must keep Forks out: a pinned page is copied for the child) and
// by plain references otherwise (pin.Get: nothing is unshared or copied).
func viewOf(sp *cow.Space, addr cow.Addr, n uint64, write bool) (*pageView, error) {
	var p *pin.Pages
	var err error
	if write {
		p, err = pin.Pin(sp, addr, int(n), pin.Write)
	} else {
		p, err = pin.Get(sp, addr, int(n), 0)
	}
	if err != nil {
		return nil, err
	}
	ps := sp.PageSize()
	v := &pageView{p: p, pages: make([][]byte, 0, (int(n)+ps-1)/ps)}
	for v.shift = 0; 1<<v.shift < ps; v.shift++ {
	}
	for _, run := range p.Bytes() {
		for len(run) > 0 {
			k := min(len(run), ps)
			v.pages = append(v.pages, run[:k:k])
			run = run[k:]
		}
	}
	return v, nil
}

// at returns the bytes from off to the end of its page.
func (v *pageView) at(off uint64) []byte {
	return v.pages[off>>v.shift][off&(1<<v.shift-1):]
}

// read copies len(dst) bytes from off into dst, across pages.
func (v *pageView) read(dst []byte, off uint64) {
	for len(dst) > 0 {
		n := copy(dst, v.at(off))
		dst, off = dst[n:], off+uint64(n)
	}
}

func (v *pageView) release() { v.p.Release() }
