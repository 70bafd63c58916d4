# syntax=docker/dockerfile:1
# The logrouter image: both binaries (`router`, `loader`), the schemas and
# the migrations, on a distroless runtime (glibc, libgcc, CA certificates;
# no shell, no package manager, no compiler), running as a non-root user.
#
#   docker build -t logrouter .
#   docker run --rm logrouter router --help
#   docker run --rm -p 9100:9100 logrouter \
#     router run --queue-url URL --out s3://bucket/routed --metrics-addr 0.0.0.0:9100
#
# Both stages are Debian 12 (bookworm): the binaries link against the glibc
# they were built with.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# The C parts (bundled SQLite, zstd, aws-lc) need only the compiler the
# image ships; ISA-L (the router's `isal` feature, which writes gzip parts
# 1.7-2.6x faster than libdeflate: issue #26) is assembled with nasm and
# built with autotools. Unpinned: Debian 12's own versions, as the image's.
# The cache mounts keep the registry and the target folder between builds.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nasm autoconf automake libtool make \
    && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock ./
COPY logrouter logrouter
COPY router router
COPY loader loader
COPY gen-events gen-events
COPY tests tests
# Line tables stay out of the image: 30 and 33 MB binaries instead of 150+.
ENV CARGO_PROFILE_RELEASE_STRIP=debuginfo
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --features router/isal --bin router --bin loader \
    && install -D -m 0755 target/release/router target/release/loader -t /out/bin

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/bin/ /usr/local/bin/
COPY schemas /app/schemas
COPY migrations /app/migrations
WORKDIR /app
# JSON log lines for the log pipeline; parts bound for S3 spool in /tmp
# (give the task enough ephemeral storage for route.part_size_bytes times
# the objects and types in flight).
ENV RUST_LOG=info \
    LOGROUTER_LOG__FORMAT=json \
    LOGROUTER_ROUTE__SPOOL_DIR=/tmp
# distroless's nonroot user (65532), by number so that runtimes can check it.
USER 65532:65532
# --metrics-addr 0.0.0.0:9100 serves /metrics, /healthz and /livez here.
EXPOSE 9100
CMD ["router", "--help"]
