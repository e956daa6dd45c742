package membarrier

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// The membarrier(2) commands (include/uapi/linux/membarrier.h).
const (
	cmdQuery                    = 0
	cmdPrivateExpedited         = 1 << 3
	cmdRegisterPrivateExpedited = 1 << 4
)

// register asks for the private expedited command (Linux 4.14) and
// registers the process for it.
func register() bool {
	cmds, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, cmdQuery, 0, 0)
	if errno != 0 || cmds&cmdPrivateExpedited == 0 {
		return false
	}
	_, _, errno = unix.Syscall(unix.SYS_MEMBARRIER, cmdRegisterPrivateExpedited, 0, 0)
	return errno == 0
}

func barrier() {
	if _, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, cmdPrivateExpedited, 0, 0); errno != 0 {
		// Registered, and it worked once: the kernel cannot take it back.
		panic(fmt.Sprintf("membarrier: MEMBARRIER_CMD_PRIVATE_EXPEDITED: %v", errno))
	}
}
