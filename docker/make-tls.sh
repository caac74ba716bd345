#!/usr/bin/env bash
# Makes the TLS files docker-compose.yml mounts, in docker/tls/:
#   ca/ca.pem                  a private CA: trusted by the mediator (TLS_CA_BUNDLE) and the
#                              configurator, and by admins' browsers for the OpenHIM console
#   openhim-core/cert.pem,     the OpenHIM core's certificate (API :8080, HTTPS router :5000),
#   openhim-core/key.pem       signed by that CA, for the names given (default: openhim-core,
#                              the compose service name, plus localhost and 127.0.0.1)
#   private/ca-key.pem         the CA's key: mounted nowhere; keep it safe, or delete it and make
#                              a new CA when the certificate is renewed
#
#   docker/make-tls.sh [--renew] [NAME...]
#
# NAMEs are extra DNS names (or IPv4 addresses) of the core, e.g. the public host name EMR
# systems use for the router (give them again on every run). An existing CA is kept; an
# existing certificate is kept unless its names differ, it expires within 30 days, or --renew
# is given. The mediator always verifies TLS (rustls): the certificate needs the name it
# connects to (openhim-core) in subjectAltName and must not be a CA itself. To use a
# certificate of your own PKI instead, put it (and its CA) in the same files.
set -euo pipefail

TLS_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)/tls
CA_CERT=$TLS_DIR/ca/ca.pem
CA_KEY=$TLS_DIR/private/ca-key.pem
CORE_CERT=$TLS_DIR/openhim-core/cert.pem
CORE_KEY=$TLS_DIR/openhim-core/key.pem

die() {
  printf 'make-tls: error: %s\n' "$*" >&2
  exit 1
}
log() { printf 'make-tls: %s\n' "$*" >&2; }

renew=0
names=(openhim-core localhost 127.0.0.1)
for arg in "$@"; do
  case $arg in
    --renew) renew=1 ;;
    -*) die "unknown option $arg (usage: docker/make-tls.sh [--renew] [NAME...])" ;;
    *) names+=("$arg") ;;
  esac
done
command -v openssl >/dev/null || die "openssl is needed"

san=""
for name in "${names[@]}"; do
  if [[ $name =~ ^[0-9]+(\.[0-9]+){3}$ ]]; then
    san+="${san:+, }IP:$name"
  else
    san+="${san:+, }DNS:$name"
  fi
done

mkdir -p "$TLS_DIR/ca" "$TLS_DIR/openhim-core" "$TLS_DIR/private"
chmod 700 "$TLS_DIR/private"
work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT

if [[ ! -s $CA_CERT || ! -s $CA_KEY ]]; then
  log "making a new CA in $TLS_DIR/ca (key in $TLS_DIR/private)"
  cat >"$work/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
x509_extensions = v3_ca
prompt = no
[dn]
CN = cht-fhir-mediator stack CA
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
  (umask 077 && openssl req -x509 -new -newkey rsa:3072 -nodes -sha256 -days 3650 \
    -config "$work/ca.cnf" -keyout "$CA_KEY" -out "$CA_CERT" 2>/dev/null) || die "openssl could not make the CA"
  chmod 644 "$CA_CERT"
  renew=1 # a new CA needs a new certificate
fi

# The names an existing certificate carries, in the form $san would print them.
current_san() {
  openssl x509 -noout -ext subjectAltName -in "$CORE_CERT" 2>/dev/null | tail -n +2 |
    sed 's/IP Address:/IP:/g; s/^ *//'
}

if ((renew == 0)) && [[ -s $CORE_CERT && -s $CORE_KEY ]] &&
  openssl x509 -noout -checkend $((30 * 86400)) -in "$CORE_CERT" >/dev/null &&
  openssl verify -CAfile "$CA_CERT" -purpose sslserver "$CORE_CERT" >/dev/null 2>&1 &&
  [[ $(current_san) == "$san" ]]; then
  log "keeping $CORE_CERT (same names, valid for 30 days more; --renew makes a new one)"
  exit 0
fi

log "making the OpenHIM core certificate for: $san"
cat >"$work/core.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = ${names[0]}
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF
(
  umask 077
  openssl req -new -newkey rsa:3072 -nodes -sha256 -config "$work/core.cnf" \
    -keyout "$work/key.pem" -out "$work/core.csr" 2>/dev/null
  openssl x509 -req -sha256 -days 825 -in "$work/core.csr" -CA "$CA_CERT" -CAkey "$CA_KEY" \
    -set_serial "0x$(openssl rand -hex 16)" -extfile "$work/core.cnf" -extensions v3_server \
    -out "$work/cert.pem" 2>/dev/null
) || die "openssl could not make the certificate"
openssl verify -CAfile "$CA_CERT" -purpose sslserver "$work/cert.pem" >/dev/null ||
  die "the new certificate does not verify against $CA_CERT"
# The certificate is public. The key stays 0600: the core's container runs as root and reads
# it anyway.
chmod 644 "$work/cert.pem"
mv -f -- "$work/key.pem" "$CORE_KEY"
mv -f -- "$work/cert.pem" "$CORE_CERT"
log "done; if the stack runs: docker compose restart openhim-core"
