# syntax=docker/dockerfile:1.7
# Image of the Palisade enforcer (Envoy ext_authz server running HTTP policy and the WAF).
#
# Build from the repository root (the whole workspace is the build context):
#   docker build -f deploy/enforcer.Dockerfile -t ghcr.io/palisade-waf/palisade-enforcer:0.1.0 .
#
# Stage 1 compiles a release binary with the locked dependency set; stage 2 is
# distroless (glibc, CA certificates, no shell, no package manager) and runs as
# the unprivileged user 65532, matching the chart's securityContext. TLS is
# rustls, so no OpenSSL is needed at run time.

ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm

FROM docker.io/library/rust:${RUST_VERSION}-${DEBIAN} AS build
WORKDIR /src
# protoc comes from the protoc-bin-vendored crate; nothing else to install.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p palisade-enforcer --bin palisade-enforcer \
 && install -D -m 0755 target/release/palisade-enforcer /out/palisade-enforcer

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="palisade-enforcer" \
      org.opencontainers.image.description="the Palisade enforcer (Envoy ext_authz server running HTTP policy and the WAF)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/palisade-waf/palisade"
COPY --from=build /out/palisade-enforcer /usr/local/bin/palisade-enforcer
USER 65532:65532
EXPOSE 9091
ENTRYPOINT ["/usr/local/bin/palisade-enforcer"]
