package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/extagram/extagram/internal/meshtls"

	"github.com/extagram/extagram/hatest"
)

// nginx is Debian's nginx run as a plain process on loopback over TLS,
// serving as files the bodies the edge served.
type nginx struct {
	dir    string // prefix: configuration, certificate, logs, pid file
	root   string // the files it serves
	url    string // https://127.0.0.1:PORT
	proc   *proc
	client *http.Client
}

// contentTypes are the Content-Type headers nginx sends, as the edge sends
// them.
type contentTypes struct {
	HTML, JSON, Image, CSS string
}

var nginxConf = template.Must(template.New("nginx.conf").Parse(`# Written by bench/http.
worker_processes 2;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log warn;

events {
    worker_connections 1024;
}

http {
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65s;
    # The edge (Go's net/http) closes no connection after a number of
    # requests; nginx's default (1000) would add a TLS handshake, and a
    # read error in wrk, every 1000 requests.
    keepalive_requests 1000000;
    client_body_temp_path {{.Dir}}/tmp/body;
    proxy_temp_path {{.Dir}}/tmp/proxy;
    fastcgi_temp_path {{.Dir}}/tmp/fastcgi;
    uwsgi_temp_path {{.Dir}}/tmp/uwsgi;
    scgi_temp_path {{.Dir}}/tmp/scgi;
    types {}

    # GET / is the feed page; GET /?page=TOKEN an older page.
    map $arg_page $feed_file {
        ""      /index.html;
        default /page.html;
    }

    server {
        listen {{.Addr}} ssl;
        ssl_certificate {{.Dir}}/cert.pem;
        ssl_certificate_key {{.Dir}}/key.pem;
        root {{.Root}};

        location = / {
            default_type "{{.Types.HTML}}";
            try_files $feed_file =404;
        }
        location = /api/v1/posts {
            default_type "{{.Types.JSON}}";
        }
        location /storage/ {
            default_type "{{.Types.Image}}";
        }
        location = /static/style.css {
            default_type "{{.Types.CSS}}";
        }
    }
}
`))

// startNginx writes the configuration and a self-signed certificate into
// dir and starts nginx, with worker_processes 2, and waits until it
// answers.
func startNginx(ctx context.Context, dir string, types contentTypes) (*nginx, error) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		return nil, fmt.Errorf("nginx: %w (apt-get install -y nginx)", err)
	}
	for _, t := range []string{types.HTML, types.JSON, types.Image, types.CSS} {
		if t == "" || strings.ContainsAny(t, "\"\\{}$\n") {
			return nil, fmt.Errorf("nginx: unusable Content-Type %q", t)
		}
	}
	n := &nginx{dir: dir, root: filepath.Join(dir, "root"), client: hatest.NewClient(2)}
	// nginx's workers run as nobody when the benchmark runs as root: they
	// must be able to read the files.
	for _, d := range []string{dir, n.root, filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		if err := os.Chmod(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := writeCert(dir); err != nil {
		return nil, err
	}
	// Another program can take the port between FreePort and nginx's
	// bind: then nginx is started again on another.
	for attempt := 1; ; attempt++ {
		err := n.start(ctx, bin, types)
		if err == nil {
			return n, nil
		}
		if attempt < 3 && ctx.Err() == nil && portTaken(err.Error()) {
			logf("nginx: its port was taken by another program; trying another")
			continue
		}
		return n, err
	}
}

// start writes the configuration for a free port, starts nginx and waits
// until it answers.
func (n *nginx) start(ctx context.Context, bin string, types contentTypes) error {
	addr, err := hatest.FreePort("127.0.0.1")
	if err != nil {
		return err
	}
	n.url = "https://" + addr
	var conf strings.Builder
	if err := nginxConf.Execute(&conf, map[string]any{"Dir": n.dir, "Root": n.root, "Addr": addr, "Types": types}); err != nil {
		return err
	}
	confPath := filepath.Join(n.dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o644); err != nil {
		return err
	}
	errorLog := filepath.Join(n.dir, "error.log")
	logged := fileSize(errorLog)
	n.proc, err = startProc("nginx", n.url, "", filepath.Join(n.dir, "nginx.log"), bin, os.Environ(), []string{
		"-p", n.dir, "-c", confPath, "-e", errorLog, "-g", "daemon off;",
	})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if !n.proc.running() {
			return fmt.Errorf("nginx did not start: %v\n%s", n.proc.exitErr(), readFrom(errorLog, logged))
		}
		code, _, _, err := fetch(ctx, n.client, n.url, "/static/style.css")
		if err == nil && code != 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			n.stop()
			return fmt.Errorf("nginx did not answer on %s within 15s: %v\n%s", addr, err, readFrom(errorLog, logged))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// put makes nginx serve body for uri (a path and query the edge serves).
func (n *nginx) put(uri string, body []byte) error {
	u, err := url.Parse(uri)
	if err != nil {
		return err
	}
	file := u.Path
	if file == "/" {
		file = "/index.html"
		if u.Query().Get("page") != "" {
			file = "/page.html"
		}
	}
	path := filepath.Join(n.root, filepath.FromSlash(file))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	// Written aside and renamed: nginx never serves half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, body, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// stop stops nginx (master and workers).
func (n *nginx) stop() {
	if n.proc != nil {
		n.proc.stop(syscall.SIGQUIT, 5*time.Second)
	}
}

// peakKB returns the sum of the peak RSS of nginx's master and workers.
func (n *nginx) peakKB() (int64, int, error) {
	pids := append([]int{n.proc.pid()}, children(n.proc.pid())...)
	var sum int64
	for _, pid := range pids {
		kb, err := vmHWM(pid)
		if err != nil {
			return 0, 0, err
		}
		sum += kb
	}
	return sum, len(pids), nil
}

// writeCert writes a self-signed ECDSA P-256 certificate for 127.0.0.1
// and localhost (the kind the edge makes for itself) to dir/cert.pem and
// dir/key.pem.
func writeCert(dir string) error {
	certPEM, keyPEM, err := meshtls.SelfSigned("Extagram HTTP benchmark (self-signed)", time.Now(), 7*24*time.Hour)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o644)
}
