package hatest

import (
	"context"
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

// Build compiles cmd/extagram into dir and returns the binary's path. It
// must run inside the module (tests and `go run ./bench/failover` do).
func Build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "extagram")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/extagram/extagram/cmd/extagram")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("hatest: go build: %w\n%s", err, out)
	}
	return bin, nil
}

// Proc is one role of the binary run as its own process. It can be
// started again with the same arguments after it exits or is killed.
type Proc struct {
	Name        string
	Addr        string // gRPC address of a service, HTTPS address of the edge
	MetricsAddr string // host:port of its /metrics

	bin     string
	args    []string
	env     []string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current process has exited
	err  error         // its exit status, once done
}

func newProc(bin, name, addr, metricsAddr, logDir string, env, args []string) *Proc {
	return &Proc{
		Name: name, Addr: addr, MetricsAddr: metricsAddr,
		bin: bin, args: args, env: env,
		logPath: filepath.Join(logDir, name+".log"),
	}
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

// Start starts the process. Its standard output and error go to
// <dir>/<name>.log, appended across restarts.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("hatest: %s is already running", p.Name)
		}
	}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("hatest: %s: %w", p.Name, err)
	}
	defer f.Close()
	fmt.Fprintf(f, "---- %s: extagram %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(p.args, " "))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
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

// Signal sends sig to the running process.
func (p *Proc) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("hatest: %s was never started", p.Name)
	}
	select {
	case <-done:
		return fmt.Errorf("hatest: %s has exited", p.Name)
	default:
	}
	if err := cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("hatest: signal %s: %w", p.Name, err)
	}
	return nil
}

// Wait waits at most timeout for the process to exit and returns its exit
// error (nil for status 0).
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

// Running reports whether the process has been started and not exited.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL (after SIGCONT, in case it is stopped) and waits for
// the process to be gone. It does nothing when the process is not running.
func (p *Proc) Kill() error {
	if !p.Running() {
		return nil
	}
	_ = p.Signal(syscall.SIGCONT)
	_ = p.Signal(syscall.SIGKILL)
	err := p.Wait(10 * time.Second)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return nil // killed, as asked
	}
	return err
}

// Terminate sends SIGTERM and waits at most timeout for a clean exit.
func (p *Proc) Terminate(timeout time.Duration) error {
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	if err := p.Wait(timeout); err != nil {
		return fmt.Errorf("hatest: %s after SIGTERM: %w", p.Name, err)
	}
	return nil
}

// Log returns the last n bytes of the process's log.
func (p *Proc) Log(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// RSS returns the resident memory of the running process, in bytes
// (VmRSS of /proc/PID/status).
func (p *Proc) RSS() (int64, error) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return 0, fmt.Errorf("hatest: %s is not running", p.Name)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("hatest: %s: %w", p.Name, err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("hatest: %s: VmRSS %q: %w", p.Name, v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("hatest: %s: no VmRSS", p.Name)
}
