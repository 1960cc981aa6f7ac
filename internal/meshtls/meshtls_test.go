package meshtls

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGenerate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mesh")
	written, err := Generate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 2+2*len(Identities) {
		t.Fatalf("wrote %d files: %v", len(written), written)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("folder: %v, %v", fi.Mode(), err)
	}
	for _, p := range written {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o644)
		if strings.HasSuffix(p, "-key.pem") {
			want = 0o600
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", filepath.Base(p), fi.Mode().Perm(), want)
		}
	}
	feed := loadLeaf(t, DefaultFiles(dir, Feed).Cert)
	if IdentityOf(feed) != Feed || !slicesHave(feed.DNSNames, "localhost", "feed") || len(feed.IPAddresses) == 0 {
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
}

func slicesHave(have []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || h == w
		}
		if !found {
			return false
		}
	}
	return true
}

func loadLeaf(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(path, strings.TrimSuffix(path, ".pem")+"-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// serve accepts TLS connections with cfg and completes their handshakes;
// it returns the address.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				buf := make([]byte, 1)
				_, _ = c.Read(buf) // until the client closes
				c.Close()
			}()
		}
	}()
	return lis.Addr().String()
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
	// TLS 1.3: the server's verdict on the client comes with the first
	// read.
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
		return nil, err
	}
	return c.ConnectionState().PeerCertificates[0], nil
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestMutualTLS: a feed service accepts the edge and the operator, and no
// one else; the edge accepts only a feed server when it dials a feed.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	if _, err := Generate(dir); err != nil {
		t.Fatal(err)
	}
	srvCfg, err := ServerConfig(DefaultFiles(dir, Feed), []string{Edge, Operator})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srvCfg)
	client := func(name, server string) *tls.Config {
		cfg, err := ClientConfig(DefaultFiles(dir, name), server)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	for _, c := range []struct {
		name string
		cfg  *tls.Config
		ok   bool
	}{
		{"the edge", client(Edge, Feed), true},
		{"the operator", client(Operator, ""), true},
		{"another service", client(Blob, Feed), false},
		{"the edge expecting a blob server", client(Edge, Blob), false},
		{"no client certificate", &tls.Config{InsecureSkipVerify: true}, false}, //nolint:gosec // grpcurl -insecure
	} {
		_, err := dial(addr, c.cfg)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want accepted %v", c.name, err, c.ok)
		}
	}
	// A CA of its own is not the mesh's.
	other := t.TempDir()
	if _, err := Generate(other); err != nil {
		t.Fatal(err)
	}
	if _, err := dial(addr, client2(t, DefaultFiles(other, Edge), Feed)); err == nil {
		t.Error("an edge certificate of another CA was accepted")
	}
}

func client2(t *testing.T, f Files, server string) *tls.Config {
	cfg, err := ClientConfig(f, server)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestRotation: a certificate replaced on disk is presented on new
// connections without a restart.
func TestRotation(t *testing.T) {
	reloadEvery = 10 * time.Millisecond
	t.Cleanup(func() { reloadEvery = time.Second })
	dir := t.TempDir()
	if _, err := Generate(dir); err != nil {
		t.Fatal(err)
	}
	srvCfg, err := ServerConfig(DefaultFiles(dir, Feed), []string{Edge})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srvCfg)
	edge := client2(t, DefaultFiles(dir, Edge), Feed)
	first, err := dial(addr, edge)
	if err != nil {
		t.Fatal(err)
	}
	// A new feed certificate from the same CA.
	for _, p := range []string{DefaultFiles(dir, Feed).Cert, DefaultFiles(dir, Feed).Key} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Generate(dir); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	second, err := dial(addr, edge)
	if err != nil {
		t.Fatal(err)
	}
	if first.SerialNumber.Cmp(second.SerialNumber) == 0 {
		t.Fatal("the server still presents the old certificate")
	}
}
