package hatest

import "syscall"

// sysProcAttr puts a child in its own process group, so that a Ctrl-C
// meant for the test or benchmark does not reach it before the harness
// decides, and makes the kernel kill it when the process that started it
// dies, so a crashed or timed-out run leaves no replica behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
