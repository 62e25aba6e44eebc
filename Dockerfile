# syntax=docker/dockerfile:1
#
# One image for the three binaries (api-service, collector-service, cudlyctl)
# and the web console api-service serves (/usr/share/cudly/console); the
# Kubernetes manifests pick a binary with `command`. Needs BuildKit (the
# default builder of Docker 23 and newer):
#
#   docker build -t ghcr.io/cudly/cudly:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .

# The web console: TypeScript generated from proto/, bundled by `npm run
# build` (the same commands scripts/test-console runs) into web/dist.
FROM node:20-bookworm-slim AS console
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN --mount=type=cache,id=cudly-npm,target=/root/.npm,sharing=locked npm ci --no-audit --no-fund
COPY proto /src/proto
COPY web ./
RUN npm run build

FROM rust:1.95-bookworm AS builder
WORKDIR /src

# Only what the build reads: the workspace manifests, the crates, the protos
# (inside proto/), the migrations the binaries embed and the checked queries'
# schema data (.sqlx/, read offline as .cargo/config.toml says). Anything else, such
# as docs or scripts, changing does not invalidate this layer.
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY .sqlx .sqlx
COPY proto proto
COPY core core
COPY testkit testkit
COPY api-service api-service
COPY collector-service collector-service
COPY migrations migrations

# protoc comes from the protoc-bin-vendored crate: no system package needed.
# The registry and target directories are cache mounts, kept between builds
# but not part of any layer, so the binaries are copied out in the same step.
RUN --mount=type=cache,id=cudly-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=cudly-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=cudly-target,target=/src/target,sharing=locked \
    cargo build --release --locked --bins -p cudly-api -p cudly-collector \
 && mkdir -p /out \
 && cp target/release/api-service target/release/collector-service target/release/cudlyctl /out/

# glibc and libgcc_s (all the binaries link dynamically) and CA certificates;
# no shell, no package manager. Debian 12, like the builder, so glibc matches.
FROM gcr.io/distroless/cc-debian12:nonroot

ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="cudly" \
      org.opencontainers.image.description="cudly: api-service, collector-service and cudlyctl (cloud-commitment recommendations)" \
      org.opencontainers.image.source="https://github.com/cudly/cudly" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

COPY --from=builder /out/ /usr/local/bin/
COPY --from=console /src/web/dist/ /usr/share/cudly/console/
# api-service serves the console on its own port; `off` serves none.
ENV CUDLY_CONSOLE_DIR=/usr/share/cudly/console

# The nonroot user of distroless (65532); the manifests also require it.
USER 65532:65532
# api-service gRPC, collector-service gRPC, their metrics.
EXPOSE 50051 50052 9090 9091
# No ENTRYPOINT: `docker run IMAGE collector-service serve` and the
# manifests' `command` choose the binary. The default serves the API.
CMD ["api-service", "serve"]
