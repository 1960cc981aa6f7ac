# One image for every role of the mesh: the edge (S1), feed (S2, S3),
# upload (S4), blob (S5) and the one-shot schema migration. The role is the
# first argument: `docker run IMAGE feed --grpc-addr :50051 ...`.
#
#   docker build --build-arg VERSION=1.2.3 --build-arg COMMIT=$(git rev-parse --short HEAD) -t extagram .

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, in their own layer: it is rebuilt only when go.mod or go.sum
# change, not on every source edit.
COPY go.mod go.sum ./
RUN go mod download && go mod verify
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
# deploy/build.sh holds the build flags (CGO_ENABLED=0 go build -trimpath
# -ldflags "-s -w -X .../buildinfo.Version -X .../buildinfo.Commit"); the
# deploy tests build with the same script and check the binary is static.
RUN VERSION="${VERSION}" COMMIT="${COMMIT}" OUT=/out/extagram sh deploy/build.sh \
	&& /out/extagram version
# Writable folders owned by the runtime user: a named volume mounted on one
# of them starts with this owner, so the non-root process can write to it.
RUN mkdir -p /rootfs/data /rootfs/uploads /rootfs/mesh && chmod 0750 /rootfs/data /rootfs/uploads && chmod 0700 /rootfs/mesh

# distroless/static: CA certificates, tzdata, /etc/passwd with the nonroot
# user (65532), no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="extagram" \
	org.opencontainers.image.description="Extagram, a tiny Instagram-like site as a gRPC mesh: edge, feed, upload, blob and migrate in one static binary" \
	org.opencontainers.image.source="https://github.com/extagram/extagram" \
	org.opencontainers.image.version="${VERSION}" \
	org.opencontainers.image.revision="${COMMIT}" \
	org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build --chown=65532:65532 /rootfs/ /
COPY --from=build /out/extagram /extagram
# Numeric, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
# 8443 and 8080: the edge's HTTPS and redirect listeners; 50051: gRPC of
# feed, upload and blob; 9090: Prometheus metrics of every role.
EXPOSE 8443 8080 50051 9090
ENTRYPOINT ["/extagram"]
