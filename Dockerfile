# flaat-extauthz container image: a static binary on distroless, running as non-root.
#
#   docker build -t flaat-extauthz .
#   docker run --rm -p 9001:9001 -p 9002:9002 -p 9090:9090 flaat-extauthz serve --issuer https://login.example.org
#
# Multi-arch (BuildKit cross-compiles in the build platform's Go image, no emulation):
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=v1.2.3 --build-arg COMMIT=$(git rev-parse --short HEAD) \
#     --build-arg CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ) -t registry.example.org/flaat-extauthz:v1.2.3 --push .
#
# Build arguments: VERSION and COMMIT are stamped into `flaat-extauthz version` and the
# OCI labels; CREATED (RFC 3339) fills org.opencontainers.image.created; TARGETOS and
# TARGETARCH are set by BuildKit from --platform (a plain `docker build` without
# BuildKit builds linux/amd64).

FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
WORKDIR /src
# Module downloads are cached in their own layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
ARG TARGETOS=linux
ARG TARGETARCH=amd64
# CGO_ENABLED=0: a static binary that needs no libc in the final image.
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} GOFLAGS=-buildvcs=false go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/flaat-extauthz ./cmd/flaat-extauthz

# distroless/static: CA certificates and tzdata, no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG COMMIT=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="flaat-extauthz" \
      org.opencontainers.image.description="Envoy ext_authz server for OIDC access tokens (FLAAT rebuilt in Go)" \
      org.opencontainers.image.source="https://github.com/flaat-extauthz/flaat-extauthz" \
      org.opencontainers.image.url="https://github.com/flaat-extauthz/flaat-extauthz" \
      org.opencontainers.image.documentation="https://github.com/flaat-extauthz/flaat-extauthz/tree/main/docs" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build /out/flaat-extauthz /usr/local/bin/flaat-extauthz
# 65532 is distroless's "nonroot" user; Kubernetes can check runAsNonRoot with a numeric UID.
USER 65532:65532
# gRPC ext_authz, HTTP auth-request, admin (/metrics, /healthz, /readyz).
EXPOSE 9001 9002 9090
# The image has no shell or curl: the binary probes itself (GET 127.0.0.1:9090/readyz;
# healthy once every issuer's discovery and JWKS were fetched). With another
# server.admin_listen, override the test in compose (["CMD", ..., "--addr", "127.0.0.1:PORT"])
# or in a derived image; Kubernetes ignores HEALTHCHECK and uses its own probes
# (docs/operations-healthcheck.md).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/flaat-extauthz", "healthcheck", "--timeout", "4s"]
ENTRYPOINT ["/usr/local/bin/flaat-extauthz"]
CMD ["serve"]
