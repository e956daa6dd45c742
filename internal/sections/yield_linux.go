package sections

import "syscall"

// osYield gives this thread's CPU to another runnable thread (sched_yield):
// the one running a section in flight may be waiting for it.
func osYield() { syscall.RawSyscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }
