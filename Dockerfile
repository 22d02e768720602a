# syntax=docker/dockerfile:1
# imagegate's container image: built with the pinned toolchain (rust-version of
# Cargo.toml), a glibc binary on distroless (glibc 2.36 on both sides: Debian 12), run as
# the non-root user 65532. README.md "Container image" says how to build it.

# Keep in step with `rust-version` in Cargo.toml (crates/imagegate/tests/cli/deploy.rs
# checks it).
ARG RUST_VERSION=1.95.0

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# The lock file as committed; only the binary's dependency graph is built. The cache
# mounts keep the registry and target/ between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p imagegate \
    && install -D -m 0755 target/release/imagegate /out/imagegate

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/imagegate /usr/local/bin/imagegate
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/usr/local/bin/imagegate"]
CMD ["serve"]
