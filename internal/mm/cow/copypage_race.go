//go:build race

package cow

import "unsafe"

// copyPage is copypage.go's copyPage for race builds, where the arena lives
// in the Go heap and the detector sees page contents. The copy races by
// design (see copypage.go), so it must not be reported; go:norace alone is
// not enough for copy(), which the compiler lowers to runtime.slicecopy and
// that instruments itself. Hence a plain loop of word loads and stores that
// go:norace leaves uninstrumented. Page lengths are multiples of 8 and the
// arena's pages are 8-byte aligned.
//
//go:norace
func copyPage(dst, src []byte, _ int) {
	n := min(len(dst), len(src)) / 8
	if n == 0 {
		return
	}
	d := unsafe.Slice((*uint64)(unsafe.Pointer(&dst[0])), n)
	s := unsafe.Slice((*uint64)(unsafe.Pointer(&src[0])), n)
	for i := range d {
		d[i] = s[i]
	}
}
