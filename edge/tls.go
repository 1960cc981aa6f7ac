package edge

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/extagram/extagram/internal/meshtls"
)

// loadOrCreateCert returns the certificate in certFile/keyFile when both
// are given; otherwise a self-signed certificate for localhost kept in
// dataDir/tls (created on first use, renewed when it nears expiry).
func loadOrCreateCert(certFile, keyFile, dataDir string) (tls.Certificate, error) {
	if certFile != "" || keyFile != "" {
		if certFile == "" || keyFile == "" {
			return tls.Certificate{}, errors.New("edge: --tls-cert and --tls-key go together")
		}
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("edge: load TLS key pair: %w", err)
		}
		return c, nil
	}
	dir := filepath.Join(dataDir, "tls")
	certPath, keyPath := filepath.Join(dir, "localhost-cert.pem"), filepath.Join(dir, "localhost-key.pem")
	if c, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		if leaf, err := x509.ParseCertificate(c.Certificate[0]); err == nil && time.Until(leaf.NotAfter) > 7*24*time.Hour {
			return c, nil
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("edge: create %s: %w", dir, err)
	}
	certPEM, keyPEM, err := meshtls.SelfSigned("Extagram (self-signed)", time.Now(), 365*24*time.Hour)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, fmt.Errorf("edge: write TLS key: %w", err)
	}
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, fmt.Errorf("edge: write TLS certificate: %w", err)
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}
