package hatest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Build compiles cmd/extagram into dir and returns the binary's path; it
// must run inside the module. No DWARF (-w) halves the link, the most of a
// build from the cache; stack traces do not need it.
func Build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "extagram")
	cmd := exec.CommandContext(ctx, "go", "build", "-ldflags=-w", "-o", bin, "github.com/extagram/extagram/cmd/extagram")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("hatest: go build: %w\n%s", err, out)
	}
	return bin, nil
}

// Proc is one process of a binary, which can be started again after it
// exits.
type Proc struct {
	Name, Addr, MetricsAddr string // Addr: gRPC address of a service, HTTPS of the edge
	bin, logPath            string
	args, env               []string
	mu                      sync.Mutex
	cmd                     *exec.Cmd
	done                    chan struct{} // closed when the current process has exited
	err                     error         // its exit status, once done
}

// NewProc prepares (does not start) bin with args, the environment less
// EXTAGRAM_* (flags of the child) plus env, its output in
// <logDir>/<name>.log; addr and metricsAddr are where args make it listen.
func NewProc(bin, name, addr, metricsAddr, logDir string, env, args []string) *Proc {
	all := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "EXTAGRAM_") })
	return &Proc{Name: name, Addr: addr, MetricsAddr: metricsAddr, bin: bin, args: args,
		env: append(all, env...), logPath: filepath.Join(logDir, name+".log")}
}

// Start starts the process, appending its output to its log.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running() {
		return fmt.Errorf("hatest: %s is already running", p.Name)
	}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("hatest: %s: %w", p.Name, err)
	}
	defer f.Close()
	fmt.Fprintf(f, "---- %s: %s %s\n", time.Now().Format(time.RFC3339Nano), p.bin, strings.Join(p.args, " "))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env, cmd.Stdout, cmd.Stderr, cmd.SysProcAttr = p.env, f, f, sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("hatest: start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.err = cmd, done, nil
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

func (p *Proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return p.done != nil
	}
}

// Running reports whether the process has been started and not exited.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running()
}

// Signal sends sig to the running process.
func (p *Proc) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running() {
		return fmt.Errorf("hatest: %s is not running", p.Name)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("hatest: signal %s: %w", p.Name, err)
	}
	return nil
}

// Wait waits at most timeout for the process to exit and returns its exit
// error.
func (p *Proc) Wait(timeout time.Duration) error {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
	case <-time.After(timeout):
		return fmt.Errorf("hatest: %s still running after %s", p.Name, timeout)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Kill sends SIGCONT and SIGKILL to a running process and waits for it to
// be gone.
func (p *Proc) Kill() error {
	if !p.Running() {
		return nil
	}
	_ = p.Signal(syscall.SIGCONT)
	_ = p.Signal(syscall.SIGKILL)
	var exit *exec.ExitError
	if err := p.Wait(10 * time.Second); !errors.As(err, &exit) {
		return err
	}
	return nil // killed, as asked
}

// Log returns the last n bytes of the process's log.
func (p *Proc) Log(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	return string(b[max(0, len(b)-n):])
}

// RSS returns the resident memory of the running process (VmRSS), in bytes.
func (p *Proc) RSS() (int64, error) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil {
		return 0, fmt.Errorf("hatest: %s was never started", p.Name)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	_, v, _ := strings.Cut(string(b), "VmRSS:")
	var kb int64
	if err == nil {
		_, err = fmt.Sscan(v, &kb) // "  1234 kB"
	}
	if err != nil {
		return 0, fmt.Errorf("hatest: %s: VmRSS: %w", p.Name, err)
	}
	return kb << 10, nil
}
