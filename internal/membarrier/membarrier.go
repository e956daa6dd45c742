// Package membarrier makes every running thread of the process execute a
// full memory barrier (membarrier(2), MEMBARRIER_CMD_PRIVATE_EXPEDITED):
// the slow side of an asymmetric Dekker, which lets the fast side order a
// store before its later loads with no fence at all. A reader announces
// itself with a plain store and then loads the shared state; a writer
// changes the state, calls Barrier, and then looks for announced readers:
// every thread passed a barrier during the call, so either the reader's
// store is visible to the writer afterwards, or the reader's loads came
// after its barrier and see the change. (Userspace RCU and the JVM's
// biased locking use the same pairing.)
//
// Where the kernel (or an emulator such as qemu-user) does not offer it,
// Available reports false, once and for good, and the fast side must use
// a fenced store instead.
package membarrier

import "sync"

var (
	once sync.Once
	ok   bool
)

// Available reports whether Barrier works in this process. It is decided
// on the first call and never changes.
func Available() bool {
	once.Do(func() { ok = register() })
	return ok
}

// Barrier makes every running thread of the process execute a full memory
// barrier before it returns. It panics unless Available.
func Barrier() {
	if !Available() {
		panic("membarrier: Barrier without Available")
	}
	barrier()
}
