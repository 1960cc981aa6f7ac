package hatest

import "syscall"

// sysProcAttr keeps a Ctrl-C from reaching a child (its own process group)
// and has the kernel kill it when its parent dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
