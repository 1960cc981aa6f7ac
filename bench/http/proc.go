package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one process the benchmark started: a role of the extagram binary
// or nginx. It runs in its own process group (a Ctrl-C meant for the
// benchmark does not reach it before the benchmark decides) and, on Linux,
// is killed by the kernel if the benchmark dies.
type proc struct {
	name    string
	addr    string // what it serves: gRPC host:port, https://host:port
	metrics string // host:port of its /metrics, "" for none
	logPath string

	cmd  *exec.Cmd
	done chan struct{}

	mu     sync.Mutex
	err    error // exit status, once done
	stopAt time.Time
	peakKB int64 // VmHWM read just before it was stopped
}

// startProc starts bin with args and env; its output goes to logPath.
func startProc(name, addr, metrics, logPath, bin string, env, args []string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fmt.Fprintf(f, "---- %s: %s %s\n", time.Now().Format(time.RFC3339Nano), filepath.Base(bin), strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, addr: addr, metrics: metrics, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// running reports whether the process has not exited.
func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// exitErr describes how the process ended, for a failure message.
func (p *proc) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		return errors.New("exited with status 0")
	}
	return p.err
}

// stop notes the process's peak RSS, sends sig and waits up to grace for it
// to exit, then kills its whole process group (nginx's workers too). It does
// nothing when the process has already exited.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	if !p.running() {
		return
	}
	if kb, err := vmHWM(p.pid()); err == nil {
		p.mu.Lock()
		p.peakKB = kb
		p.stopAt = time.Now()
		p.mu.Unlock()
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	killGroup(p.pid())
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		logf("%s (pid %d) still running after SIGKILL", p.name, p.pid())
	}
}

// peak returns the process's peak RSS in KiB: now while it runs, else as
// read when it was stopped.
func (p *proc) peak() (int64, error) {
	if p.running() {
		if kb, err := vmHWM(p.pid()); err == nil {
			return kb, nil
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopAt.IsZero() {
		return 0, errors.New("not known")
	}
	return p.peakKB, nil
}

// logTail returns the last n bytes of the process's log.
func (p *proc) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// vmHWM returns the peak resident set size of a process in KiB, from
// /proc/PID/status.
func vmHWM(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// children returns the pids of a process's children (nginx's workers),
// from /proc/PID/task/PID/children.
func children(pid int) []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// childEnv is the environment of a child process: this one's, less every
// EXTAGRAM_* variable (they would set the child's flags), plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EXTAGRAM_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}
