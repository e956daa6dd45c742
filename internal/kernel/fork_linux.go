package kernel

import (
	"fmt"
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

// Fork forks this process with a raw clone(SIGCHLD) whose child exits at
// once, and returns how long the clone call took in the parent: the cost of
// copying this process's page tables and accounting, which is what a
// fork-based snapshot (Redis's BGSAVE) pays. It is written the way the
// syscall package's fork path is: the clone and the child's exit happen in
// one nosplit function that touches no Go runtime state, with every signal
// blocked on a locked thread so that nothing runs Go code in the child.
func Fork() (time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var all, old sigset
	for i := range all {
		all[i] = ^uint64(0)
	}
	if _, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, sigSetmask,
		uintptr(unsafe.Pointer(&all)), uintptr(unsafe.Pointer(&old)), unsafe.Sizeof(all), 0, 0); e != 0 {
		return 0, fmt.Errorf("rt_sigprocmask: %v", e)
	}
	start := time.Now()
	pid, errno := rawFork()
	d := time.Since(start)
	syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, sigSetmask,
		uintptr(unsafe.Pointer(&old)), 0, unsafe.Sizeof(old), 0, 0)
	if errno != 0 {
		return 0, fmt.Errorf("clone: %v", errno)
	}
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(int(pid), &ws, 0, nil)
		if err != syscall.EINTR {
			if err != nil {
				return 0, fmt.Errorf("wait4: %v", err)
			}
			break
		}
	}
	return d, nil
}

type sigset [1]uint64 // the kernel's sigset_t for rt_sigprocmask: 64 signals

const sigSetmask = 2 // SIG_SETMASK

// rawFork is clone(SIGCHLD) with the child exiting immediately. In the
// child it runs nothing but the exit system call: no allocation, no stack
// growth, no scheduler.
//
//go:nosplit
//go:norace
func rawFork() (uintptr, syscall.Errno) {
	// clone(flags, newsp, parent_tid, child_tid|tls, tls|child_tid): the
	// argument order differs between amd64 and arm64, but zeros are zeros.
	pid, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	if pid == 0 {
		for {
			syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
		}
	}
	return pid, 0
}
