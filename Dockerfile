# cht-fhir-mediator: the production image (used by docker-compose.yml).
#
#   docker build -t cht-fhir-mediator .
#   docker run --rm -p 127.0.0.1:6000:6000 -e OPENHIM_PASSWORD=... cht-fhir-mediator
#
# Every setting is an environment variable (mediator-config/settings.toml lists them, the
# README documents them). The binary embeds mediator-config/ and fhir-profiles/ at compile
# time, so the runtime image holds nothing but the binary.

# ---------------------------------------------------------------- build
FROM rust:1.95-bookworm AS build
WORKDIR /src

# Dependencies first, in a layer of their own: it is rebuilt only when Cargo.toml or
# Cargo.lock change, not on every source edit. A stub crate stands in for the real one.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src target/release/.fingerprint/cht-fhir-mediator-*

# The crate itself. Removing the stub's fingerprints above makes cargo rebuild it even
# when the copied sources are older than the stub build.
COPY src ./src
COPY mediator-config ./mediator-config
COPY fhir-profiles ./fhir-profiles
RUN cargo build --release --locked --bin cht-fhir-mediator \
    && install -D -m 0755 target/release/cht-fhir-mediator /out/cht-fhir-mediator

# ---------------------------------------------------------------- runtime
FROM debian:bookworm-slim

# ca-certificates: the public CAs for upstreams with real certificates (TLS is always
# verified; a private CA is added with TLS_CA_BUNDLE). curl: the HEALTHCHECK below (the
# binary has no health subcommand).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

# A fixed non-root uid/gid, so volume ownership is predictable across rebuilds. The data
# directory is created (and owned) before VOLUME, so a new named volume starts with that owner.
RUN groupadd --system --gid 10001 mediator \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /var/lib/cht-fhir-mediator --shell /usr/sbin/nologin mediator \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/cht-fhir-mediator

COPY --from=build /out/cht-fhir-mediator /usr/local/bin/cht-fhir-mediator

# Container defaults (the built-in ones suit a developer's machine): listen on every
# interface, JSON logs, and the dead-letter store on the volume so it survives a new container.
ENV HOST=0.0.0.0 \
    PORT=6000 \
    LOG_FORMAT=json \
    DEAD_LETTER_DB=/var/lib/cht-fhir-mediator/dead-letters.sqlite3
VOLUME ["/var/lib/cht-fhir-mediator"]
WORKDIR /var/lib/cht-fhir-mediator
USER 10001:10001
EXPOSE 6000

# Liveness only (/health/ready also needs FHIR and CHT up, which is not this container's
# fault). Shell form so a changed PORT is followed; HOST must include 127.0.0.1 (0.0.0.0 does).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD curl -fsS -o /dev/null "http://127.0.0.1:${PORT}/health/live" || exit 1

# `serve` is the default command; the others run the same way, e.g. in the compose stack
# `docker compose exec cht-fhir-mediator cht-fhir-mediator dead-letters list`.
ENTRYPOINT ["cht-fhir-mediator"]
CMD ["serve"]
