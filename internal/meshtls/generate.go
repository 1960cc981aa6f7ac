package meshtls

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// Lifetimes of what Generate makes. Certificates are renewed by running it
// again after deleting them (or by another CA, such as cert-manager).
const (
	caLifetime   = 10 * 365 * 24 * time.Hour
	certLifetime = 2 * 365 * 24 * time.Hour
)

// serviceNames are the host names a certificate is for, besides localhost
// and the loopback addresses: the names the edge dials a role by in
// Compose and Kubernetes.
var serviceNames = map[string][]string{
	Feed:   {"feed"},
	Upload: {"upload"},
	Blob:   {"blob"},
	Edge:   {"edge"},
}

// Generate writes into dir the mesh CA (ca.pem, ca-key.pem) and, for each
// identity, NAME.pem and NAME-key.pem, keeping every file that exists
// already; it returns the files it wrote. Keys are written 0600, the
// folder is made 0700.
func Generate(dir string) (written []string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mesh TLS: %w", err)
	}
	caCert, caKey, made, err := loadOrMakeCA(dir)
	if err != nil {
		return nil, err
	}
	if made {
		written = append(written, filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"))
	}
	for _, name := range Identities {
		f := DefaultFiles(dir, name)
		if exists(f.Cert) && exists(f.Key) {
			continue
		}
		if err := issue(f, name, caCert, caKey); err != nil {
			return written, err
		}
		written = append(written, f.Cert, f.Key)
	}
	return written, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func loadOrMakeCA(dir string) (*x509.Certificate, crypto.Signer, bool, error) {
	certPath, keyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if exists(certPath) || exists(keyPath) {
		pair, err := tls.LoadX509KeyPair(certPath, keyPath)
		if err != nil {
			return nil, nil, false, fmt.Errorf("mesh TLS: the CA in %s: %w", dir, err)
		}
		cert, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			return nil, nil, false, fmt.Errorf("mesh TLS: the CA in %s: %w", dir, err)
		}
		signer, ok := pair.PrivateKey.(crypto.Signer)
		if !ok {
			return nil, nil, false, errors.New("mesh TLS: the CA key cannot sign")
		}
		return cert, signer, false, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, false, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Extagram mesh CA", Organization: []string{"Extagram"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, false, fmt.Errorf("mesh TLS: make the CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, false, err
	}
	if err := writePEM(keyPath, key, 0o600); err != nil {
		return nil, nil, false, err
	}
	if err := writeCert(certPath, der); err != nil {
		return nil, nil, false, err
	}
	return cert, key, true, nil
}

// issue writes a certificate and key for identity name, signed by the CA.
func issue(f Files, name string, ca *x509.Certificate, caKey crypto.Signer) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	notAfter := now.Add(certLifetime)
	if ca.NotAfter.Before(notAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name, Organization: []string{"Extagram"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// Every identity is a client of some service; services and the
		// edge are servers too.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		URIs:        []*url.URL{identityURI(name)},
		DNSNames:    append([]string{"localhost"}, serviceNames[name]...),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("mesh TLS: issue %s: %w", name, err)
	}
	if err := writePEM(f.Key, key, 0o600); err != nil {
		return err
	}
	return writeCert(f.Cert, der)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func writePEM(path string, key *ecdsa.PrivateKey, mode fs.FileMode) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writeFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), mode)
}

func writeCert(path string, der []byte) error {
	return writeFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// writeFile writes data to path atomically (a temporary file, then a
// rename), so a service reloading the file never reads half of it.
func writeFile(path string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("mesh TLS: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("mesh TLS: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("mesh TLS: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("mesh TLS: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("mesh TLS: %w", err)
	}
	return nil
}
