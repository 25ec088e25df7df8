# syntax=docker/dockerfile:1
#
# pigp container image: a static binary (CGO_ENABLED=0, pure-Go SQLite,
# time zones embedded with time/tzdata) on distroless/static, which brings
# only CA certificates, /etc/passwd with a "nonroot" user and /tmp. No
# shell, no package manager: the health check is the binary itself.
#
#   docker build --build-arg VERSION=1.4.0 --build-arg COMMIT=$(git rev-parse HEAD) -t pigp:1.4.0 .
#   docker run -d --name pigp -p 2222:2222 -p 8080:8080 -v pigp-data:/data pigp:1.4.0
#
# For byte-identical rebuilds, pin the base images by digest
# (golang:1.26.10-bookworm@sha256:…, distroless/static-debian12:nonroot@sha256:…).

# Go 1.26.10 fixes standard-library advisories of 1.26.8 (README, Security).
ARG GO_VERSION=1.26.10

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so that a source change does not download them again. The
# replace directives point at the patched copies of zxcvbn, pkg/sftp and
# x/crypto, whose go.mod must be there.
COPY go.mod go.sum ./
COPY third_party/zxcvbn/go.mod third_party/zxcvbn/go.sum ./third_party/zxcvbn/
COPY third_party/sftp/go.mod third_party/sftp/go.sum ./third_party/sftp/
COPY third_party/crypto/go.mod third_party/crypto/go.sum ./third_party/crypto/
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
# Reproducible: no cgo, no local paths (-trimpath), no VCS stamping (the
# commit comes from COMMIT), an empty build id. Same flags as the test
# that runs this binary in an empty root (cmd/pigp/image_test.go).
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags="-s -w -buildid= -X github.com/pigp/pigp.Version=${VERSION} -X github.com/pigp/pigp.Commit=${COMMIT}" \
      -o /out/pigp ./cmd/pigp \
 && mkdir -p /out/data
# The binary must run without the build image's files.
RUN /out/pigp version

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pigp /usr/local/bin/pigp
# The data directory belongs to the non-root user (65532, "nonroot").
COPY --from=build --chown=65532:65532 --chmod=0700 /out/data /data
USER 65532:65532
ENV PIGP_DATA_DIR=/data \
    PIGP_SFTP_LISTEN=:2222 \
    PIGP_HTTP_LISTEN=:8080 \
    PIGP_LOG_FORMAT=json
VOLUME ["/data"]
# 2222: SSH/SFTP; 8080: the portal (HTTPS when tls_cert/tls_key are set);
# 9090: Prometheus metrics, only when PIGP_METRICS_LISTEN=:9090 is set.
EXPOSE 2222 8080 9090
# Ready: /readyz answers 200 (database reachable) and the SSH banner comes.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/pigp", "healthcheck", "--sftp"]
# SIGTERM lets transfers finish for shutdown_timeout (30 s): give
# `docker stop` more than that (docker stop -t 40, stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/pigp"]
CMD ["serve"]
