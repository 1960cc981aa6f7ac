package main

import "syscall"

// sysProcAttr puts a child in its own process group and makes the kernel
// kill it when the benchmark dies, so a crashed or killed run leaves no
// process behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup sends SIGKILL to the process group led by pid (every child
// leads its own): nginx's workers go with their master.
func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }
