// Package meshtls is the mutual TLS of the mesh: one CA, a certificate per
// identity (the edge, each service role, an operator), servers that accept
// only the identities allowed to call them, and clients that check they
// reach the role they meant. Certificates and the CA are read from files
// and read again when the files change, so a new certificate is picked up
// without a restart. It imports only the standard library.
package meshtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// The identities of the mesh.
const (
	Edge     = "edge"
	Feed     = "feed"
	Upload   = "upload"
	Blob     = "blob"
	Operator = "operator"
)

// Identities are every identity Generate makes a certificate for.
var Identities = []string{Edge, Feed, Upload, Blob, Operator}

// trustDomain is the host of the identities' URIs: spiffe://extagram/edge.
const trustDomain = "extagram"

// identityURI is the URI a certificate of name carries.
func identityURI(name string) *url.URL {
	return &url.URL{Scheme: "spiffe", Host: trustDomain, Path: "/" + name}
}

// IdentityOf returns the mesh identity a certificate carries, or "".
func IdentityOf(cert *x509.Certificate) string {
	for _, u := range cert.URIs {
		if u.Scheme == "spiffe" && u.Host == trustDomain && len(u.Path) > 1 {
			return u.Path[1:]
		}
	}
	return ""
}

// Files names the files of one identity.
type Files struct {
	CA   string // the mesh CA's certificate (PEM)
	Cert string // the identity's certificate (PEM)
	Key  string // its private key (PEM)
}

// DefaultFiles are the files of identity name in dir, as Generate writes
// them: ca.pem, NAME.pem and NAME-key.pem.
func DefaultFiles(dir, name string) Files {
	return Files{
		CA:   filepath.Join(dir, "ca.pem"),
		Cert: filepath.Join(dir, name+".pem"),
		Key:  filepath.Join(dir, name+"-key.pem"),
	}
}

// Check reports whether the files exist, naming the first one missing.
func (f Files) Check() error {
	for _, p := range []string{f.CA, f.Cert, f.Key} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("mesh TLS: %w", err)
		}
	}
	return nil
}

// reloadEvery is how often, at most, the files are looked at again.
var reloadEvery = time.Second

// source holds the files' contents, read again when a file changes (its
// modification time or size), at most every reloadEvery.
type source struct {
	files Files
	mu    sync.Mutex
	seen  time.Time // when the files were last looked at
	stamp [3]fileStamp
	cert  *tls.Certificate
	pool  *x509.CertPool
	err   error
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func newSource(f Files) (*source, error) {
	s := &source{files: f}
	if _, _, err := s.get(); err != nil {
		return nil, err
	}
	return s, nil
}

// get returns the current certificate and CA pool.
func (s *source) get() (*tls.Certificate, *x509.CertPool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if s.cert != nil && now.Sub(s.seen) < reloadEvery {
		return s.cert, s.pool, nil
	}
	s.seen = now
	var stamp [3]fileStamp
	for i, p := range []string{s.files.CA, s.files.Cert, s.files.Key} {
		fi, err := os.Stat(p)
		if err != nil {
			return s.keep(fmt.Errorf("mesh TLS: %w", err))
		}
		stamp[i] = fileStamp{fi.ModTime(), fi.Size()}
	}
	if s.cert != nil && stamp == s.stamp {
		return s.cert, s.pool, nil
	}
	cert, err := tls.LoadX509KeyPair(s.files.Cert, s.files.Key)
	if err != nil {
		return s.keep(fmt.Errorf("mesh TLS: %w", err))
	}
	caPEM, err := os.ReadFile(s.files.CA)
	if err != nil {
		return s.keep(fmt.Errorf("mesh TLS: %w", err))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return s.keep(fmt.Errorf("mesh TLS: no certificate in %s", s.files.CA))
	}
	s.cert, s.pool, s.stamp, s.err = &cert, pool, stamp, nil
	return s.cert, s.pool, nil
}

// keep answers a failed reload with the files read before, if any: a file
// half rewritten must not stop a running service; the error is kept for
// when nothing was ever read.
func (s *source) keep(err error) (*tls.Certificate, *x509.CertPool, error) {
	s.err = err
	if s.cert != nil {
		return s.cert, s.pool, nil
	}
	return nil, nil, err
}

// ServerConfig returns the TLS configuration of a service: it presents the
// service's certificate and accepts only clients with a certificate of
// the mesh CA naming one of allow.
func ServerConfig(f Files, allow []string) (*tls.Config, error) {
	src, err := newSource(f)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{"h2"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, pool, err := src.get()
			if err != nil {
				return nil, err
			}
			return &tls.Config{
				MinVersion:   tls.VersionTLS13,
				NextProtos:   []string{"h2"},
				Certificates: []tls.Certificate{*cert},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    pool,
				VerifyConnection: func(cs tls.ConnectionState) error {
					if len(cs.PeerCertificates) == 0 {
						return errors.New("mesh TLS: no client certificate")
					}
					id := IdentityOf(cs.PeerCertificates[0])
					if !slices.Contains(allow, id) {
						return fmt.Errorf("mesh TLS: identity %q may not call this service (allowed: %v)", id, allow)
					}
					return nil
				},
			}, nil
		},
	}, nil
}

// ClientConfig returns the TLS configuration of a client of the mesh: it
// presents the client's certificate and accepts a server only with a
// certificate of the mesh CA for the name dialled and naming the identity
// server ("" for any identity of the mesh).
func ClientConfig(f Files, server string) (*tls.Config, error) {
	src, err := newSource(f)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, _, err := src.get()
			return cert, err
		},
		// The chain is verified below, against the CA as it is now (it
		// may have been replaced since start-up), with the host name and
		// the identity.
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, pool, err := src.get()
			if err != nil {
				return err
			}
			if len(cs.PeerCertificates) == 0 {
				return errors.New("mesh TLS: no server certificate")
			}
			leaf := cs.PeerCertificates[0]
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{
				Roots: pool, Intermediates: inter, DNSName: cs.ServerName,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}); err != nil {
				return fmt.Errorf("mesh TLS: %w", err)
			}
			if id := IdentityOf(leaf); server != "" && id != server {
				return fmt.Errorf("mesh TLS: the server is %q, want %q", id, server)
			}
			return nil
		},
	}, nil
}
