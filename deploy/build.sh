#!/bin/sh
# Builds the one extagram binary: static (no cgo, no dynamic loader), with
# reproducible paths, and stamped with VERSION and COMMIT. The Dockerfile runs
# this script and TestDockerfileBuildIsStatic runs it too, so the flags live
# in one place and the test checks exactly the binary that ships.
#
#   VERSION=1.2.3 COMMIT=$(git rev-parse --short HEAD) OUT=/tmp/extagram deploy/build.sh
set -eu

# Build from the module root whatever the caller's directory; a relative OUT
# is relative to it.
cd "$(dirname "$0")/.."

VERSION="${VERSION:-dev}"
COMMIT="${COMMIT:-unknown}"
OUT="${OUT:-extagram}"

buildinfo=github.com/extagram/extagram/internal/buildinfo

# -buildvcs=false: the image is built without .git, so the commit comes only
# from COMMIT, and a local build gives the same binary as the image's.
CGO_ENABLED=0 exec go build \
	-trimpath \
	-buildvcs=false \
	-ldflags "-s -w -X ${buildinfo}.Version=${VERSION} -X ${buildinfo}.Commit=${COMMIT}" \
	-o "${OUT}" \
	./cmd/extagram
