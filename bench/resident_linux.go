package bench

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// residentPages counts the host pages of b that are resident (mincore(2),
// which x/sys/unix does not wrap on Linux): a kernel row's RSS. It returns
// -1 if mincore fails.
func residentPages(b []byte) int64 {
	if len(b) == 0 {
		return 0
	}
	vec := make([]byte, (len(b)+os.Getpagesize()-1)/os.Getpagesize())
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		return -1
	}
	var n int64
	for _, v := range vec {
		n += int64(v & 1)
	}
	return n
}
