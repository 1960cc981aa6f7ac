package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/extagram/extagram/internal/meshtls"
)

// meshFlags are the flags of the mesh's mutual TLS, on every role and on
// health.
type meshFlags struct {
	ca, cert, key string
	insecure      bool
}

func (m *meshFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.ca, "mesh-ca", "", "the mesh CA's certificate (PEM); default <data-dir>/mesh/ca.pem")
	fs.StringVar(&m.cert, "mesh-cert", "", "this process's mesh certificate (PEM); default <data-dir>/mesh/IDENTITY.pem")
	fs.StringVar(&m.key, "mesh-key", "", "its private key (PEM); default <data-dir>/mesh/IDENTITY-key.pem")
	fs.BoolVar(&m.insecure, "mesh-insecure", false, "plaintext gRPC inside the mesh, without mutual TLS: anyone who reaches a service port may call it")
}

// meshDir is where up and the defaults keep the mesh's certificates.
func meshDir(dataDir string) string { return filepath.Join(dataDir, "mesh") }

// files returns the files of identity: the flags', else those in
// <dataDir>/mesh. It refuses to go on without them, naming the command
// that makes them.
func (m *meshFlags) files(dataDir, identity string) (meshtls.Files, error) {
	if m.insecure {
		return meshtls.Files{}, nil
	}
	f := meshtls.DefaultFiles(meshDir(dataDir), identity)
	if m.ca != "" || m.cert != "" || m.key != "" {
		if m.ca == "" || m.cert == "" || m.key == "" {
			return f, usageError{errors.New("--mesh-ca, --mesh-cert and --mesh-key go together")}
		}
		f = meshtls.Files{CA: m.ca, Cert: m.cert, Key: m.key}
	}
	if err := f.Check(); err != nil {
		return f, fmt.Errorf("%w\nthe mesh's certificates are made with: extagram certs --dir %s (or pass --mesh-ca, --mesh-cert and --mesh-key, or --mesh-insecure for plaintext)", err, meshDir(dataDir))
	}
	return f, nil
}

func cmdCerts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("certs", "Writes the mesh's CA (ca.pem, ca-key.pem) and, for each identity (edge, feed, upload, blob,\noperator), NAME.pem and NAME-key.pem into --dir, keeping the files that exist.", stderr)
	dir := fs.String("dir", "./data/mesh", "folder of the certificates (made 0700; keys are 0600)")
	if err := parse(fs, args); err != nil {
		return err
	}
	written, err := meshtls.Generate(*dir)
	if err != nil {
		return err
	}
	for _, p := range written {
		fmt.Fprintln(stdout, "wrote", p)
	}
	if len(written) == 0 {
		fmt.Fprintln(stdout, "every certificate is there already in", *dir)
	}
	return nil
}
