// Package buildinfo holds the version and commit stamped into the binary at
// build time with -ldflags "-X ...buildinfo.Version=... -X ...buildinfo.Commit=...".
package buildinfo

import "runtime/debug"

// Stamped at build time; see the Dockerfile.
var (
	Version = "dev"
	Commit  = ""
)

// CommitOrVCS returns Commit, or the VCS revision the Go toolchain recorded
// when the binary was built from a checkout without -ldflags.
func CommitOrVCS() string {
	if Commit != "" {
		return Commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}
