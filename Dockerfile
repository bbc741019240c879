# flaat-extauthz container image: a static binary on distroless, running as non-root.
#
#   docker build -t flaat-extauthz .
#   docker run --rm -p 9001:9001 -p 9002:9002 -p 9090:9090 flaat-extauthz serve --issuer https://login.example.org
#
# Build arguments: VERSION and COMMIT are stamped into `flaat-extauthz version`.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Module downloads are cached in their own layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
# CGO_ENABLED=0: a static binary that needs no libc in the final image.
RUN CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/flaat-extauthz ./cmd/flaat-extauthz

# distroless/static: CA certificates and tzdata, no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/flaat-extauthz /usr/local/bin/flaat-extauthz
# 65532 is distroless's "nonroot" user; Kubernetes can check runAsNonRoot with a numeric UID.
USER 65532:65532
# gRPC ext_authz, HTTP auth-request, admin (/metrics, /healthz, /readyz).
EXPOSE 9001 9002 9090
ENTRYPOINT ["/usr/local/bin/flaat-extauthz"]
CMD ["serve"]
