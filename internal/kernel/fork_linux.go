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
	var d time.Duration
	pid, err := forkSignalsBlocked(func() (uintptr, syscall.Errno) {
		start := time.Now()
		pid, errno := rawFork()
		d = time.Since(start)
		return pid, errno
	})
	if err != nil {
		return 0, err
	}
	return d, wait(pid)
}

// forkSignalsBlocked runs clone, a raw fork, on a locked thread with every
// signal blocked, so that nothing runs Go code in the child.
func forkSignalsBlocked(clone func() (uintptr, syscall.Errno)) (uintptr, error) {
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
	pid, errno := clone()
	syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, sigSetmask,
		uintptr(unsafe.Pointer(&old)), 0, unsafe.Sizeof(old), 0, 0)
	if errno != 0 {
		return 0, fmt.Errorf("clone: %v", errno)
	}
	return pid, nil
}

// wait reaps the child.
func wait(pid uintptr) error {
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(int(pid), &ws, 0, nil)
		if err != syscall.EINTR {
			if err != nil {
				return fmt.Errorf("wait4: %w", err)
			}
			return nil
		}
	}
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

// ForkHeld forks this process like Fork, but the child stays alive, blocked
// in a read of a pipe, while hold runs in the parent: every page of the
// parent stays shared with it, so the parent's writes in hold are the
// kernel's copy-on-write faults. The child exits once hold returns.
func ForkHeld(hold func()) error {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return fmt.Errorf("pipe2: %w", err)
	}
	defer syscall.Close(p[0])
	defer syscall.Close(p[1])
	pid, err := forkSignalsBlocked(func() (uintptr, syscall.Errno) { return rawForkBlocked(uintptr(p[0])) })
	if err != nil {
		return err
	}
	hold()
	syscall.Write(p[1], []byte{0})
	return wait(pid)
}

// rawForkBlocked is rawFork with a child that reads one byte from fd
// before it exits.
//
//go:nosplit
//go:norace
func rawForkBlocked(fd uintptr) (uintptr, syscall.Errno) {
	pid, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	if pid == 0 {
		var b [1]byte
		syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), 1)
		for {
			syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
		}
	}
	return pid, 0
}
