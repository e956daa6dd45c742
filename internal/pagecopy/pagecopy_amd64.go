package pagecopy

import "unsafe"

// canStream reports whether dst can take the non-temporal stores: 16-byte
// aligned (MOVNTDQ) and whole lines.
func canStream(dst []byte, n int) bool {
	return uintptr(unsafe.Pointer(&dst[0]))%16 == 0 && n%Line == 0
}

// stream copies n bytes with non-temporal stores, fenced, but for the line
// at skip (skip >= n: none), which it prefetches.
func stream(dst, src []byte, n, skip int) {
	ntCopy(unsafe.Pointer(&dst[0]), unsafe.Pointer(&src[0]), uintptr(n), uintptr(skip))
}

// ntCopy is implemented in pagecopy_amd64.s.
//
//go:noescape
func ntCopy(dst, src unsafe.Pointer, n, skip uintptr)
