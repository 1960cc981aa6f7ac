package meshtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func loadLeaf(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(path, strings.TrimSuffix(path, ".pem")+"-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	return pair.Leaf
}

// dial handshakes with addr and returns the server's leaf certificate.
func dial(addr string, cfg *tls.Config) (*x509.Certificate, error) {
	cfg = cfg.Clone()
	cfg.ServerName = "127.0.0.1"
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	// TLS 1.3: the server's verdict on the client comes with the first read.
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	var ne net.Error
	if _, err := c.Read(make([]byte, 1)); err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
		return nil, err
	}
	return c.ConnectionState().PeerCertificates[0], nil
}

// TestMesh generates a mesh's files, serves a feed with them and checks
// who may talk to it, then rotates the feed's certificate.
func TestMesh(t *testing.T) {
	reloadEvery = 0 // the files are looked at on every handshake
	t.Cleanup(func() { reloadEvery = time.Second })
	dir := filepath.Join(t.TempDir(), "mesh")
	written, err := Generate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 2+2*len(Identities) {
		t.Fatalf("wrote %d files: %v", len(written), written)
	}
	for _, p := range append(written, dir) {
		fi, err := os.Stat(p)
		want := map[bool]os.FileMode{false: 0o644, true: 0o600}[strings.HasSuffix(p, "-key.pem")]
		if p == dir {
			want = 0o700 | os.ModeDir
		}
		if err != nil || fi.Mode() != want {
			t.Errorf("%s: %v, want mode %v", filepath.Base(p), err, want)
		}
	}
	feed := loadLeaf(t, DefaultFiles(dir, Feed).Cert)
	if IdentityOf(feed) != Feed || !slices.Contains(feed.DNSNames, "localhost") || !slices.Contains(feed.DNSNames, "feed") ||
		len(feed.IPAddresses) == 0 {
		t.Errorf("feed certificate: identity %q, names %v, IPs %v", IdentityOf(feed), feed.DNSNames, feed.IPAddresses)
	}
	// Again: everything is kept; a missing file is made again.
	if w, err := Generate(dir); err != nil || len(w) != 0 {
		t.Fatalf("second Generate wrote %v, %v", w, err)
	}
	if err := os.Remove(DefaultFiles(dir, Operator).Key); err != nil {
		t.Fatal(err)
	}
	if w, err := Generate(dir); err != nil || len(w) != 2 {
		t.Fatalf("Generate after a key was removed wrote %v, %v", w, err)
	}
	if loadLeaf(t, DefaultFiles(dir, Feed).Cert).SerialNumber.Cmp(feed.SerialNumber) != 0 {
		t.Error("the feed certificate changed")
	}

	// A feed service accepts the edge and the operator, and no one else;
	// the edge accepts only a feed server when it dials a feed.
	srvCfg, err := ServerConfig(DefaultFiles(dir, Feed), []string{Edge, Operator})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS, srv.Config.ErrorLog = srvCfg, log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	client := func(dir, name, server string) *tls.Config {
		cfg, err := ClientConfig(DefaultFiles(dir, name), server)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	other := t.TempDir() // a CA of its own is not the mesh's
	if _, err := Generate(other); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		cfg *tls.Config
		ok  bool
	}{
		"the edge":                         {client(dir, Edge, Feed), true},
		"the operator":                     {client(dir, Operator, ""), true},
		"another service":                  {client(dir, Blob, Feed), false},
		"the edge expecting a blob server": {client(dir, Edge, Blob), false},
		"no client certificate":            {&tls.Config{InsecureSkipVerify: true}, false}, //nolint:gosec // grpcurl -insecure
		"an edge of another CA":            {client(other, Edge, Feed), false},
	} {
		if _, err := dial(addr, c.cfg); (err == nil) != c.ok {
			t.Errorf("%s: %v, want accepted %v", name, err, c.ok)
		}
	}

	// Rotation: a new feed certificate from the same CA, replaced on disk,
	// is presented on new connections without a restart.
	for _, p := range []string{DefaultFiles(dir, Feed).Cert, DefaultFiles(dir, Feed).Key} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Generate(dir); err != nil {
		t.Fatal(err)
	}
	if second, err := dial(addr, client(dir, Edge, Feed)); err != nil || second.SerialNumber.Cmp(feed.SerialNumber) == 0 {
		t.Fatalf("after rotation: %v, or the server still presents the old certificate", err)
	}
}
