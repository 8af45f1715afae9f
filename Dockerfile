# syntax=docker/dockerfile:1
#
# crashdump: one static binary (agent and retrieval CLI) on distroless/static.
#
#   make image                      # linux/amd64 + linux/arm64 with docker buildx
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=$(make -s print-version) -t <repo>/crashdump:<tag> --push .
#
# The binary is built exactly like `make build` (CGO off, -trimpath, version
# stamped with -X main.version), cross-compiled on the build platform for
# each target platform (no emulation).
#
# The image runs as the distroless "nonroot" user (65532) by default. The
# Helm chart runs the agent as UID 0 with every capability dropped but the
# few its mode needs (docs/security.md): a non-root process gets no
# capabilities in Kubernetes, and reading the 0600 dumps of other UIDs needs
# CAP_DAC_READ_SEARCH. The CLI needs nothing and runs as nonroot.

ARG GO_VERSION=1.26.8
ARG BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=v0.0.0-dev
ARG COMMIT=unknown
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath GOTOOLCHAIN=local
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" -o /out/crashdump ./cmd/crashdump

FROM ${BASE_IMAGE}
ARG VERSION=v0.0.0-dev
LABEL org.opencontainers.image.title="crashdump" \
      org.opencontainers.image.description="Crash dumps off Kubernetes nodes into S3/MinIO, attributed to the pod that crashed" \
      org.opencontainers.image.source="https://github.com/crashdump-io/crashdump" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/crashdump /crashdump
USER 65532:65532
ENTRYPOINT ["/crashdump"]
CMD ["agent"]
