package hatest

import "syscall"

// sysProcAttr makes the kernel kill a child when the process that started
// it dies, so a crashed or timed-out test leaves no replica behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
