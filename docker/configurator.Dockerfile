# The one-shot configurator of docker-compose.yml: docker/configure.sh with what it needs
# (bash, curl, jq; sha512sum and od come with busybox). Built from the docker/ directory;
# configurator.Dockerfile.dockerignore keeps the TLS keys in docker/tls/ out of the context.
FROM alpine:3.22
RUN apk add --no-cache bash curl jq
COPY configure.sh /usr/local/bin/configure.sh
# It only reads its mounts (the CA certificate and app_settings.json) and calls APIs.
USER 65534:65534
ENTRYPOINT ["/usr/local/bin/configure.sh"]
