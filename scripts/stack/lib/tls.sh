# shellcheck shell=bash
# A local test CA and a server certificate it signs, in $RUN_DIR/tls (sourced
# by scripts/stack.sh; used by the services serving HTTPS).
#
# rustls/webpki (used by the mediator) rejects a certificate without
# subjectAltName and a CA certificate used as a server certificate, so: a small
# CA (CA:TRUE) and a server certificate it signs (CA:FALSE, serverAuth, SAN
# localhost + 127.0.0.1). Kept across runs while valid.

# Set to 1 by ensure_tls when it made new certificates: a service serving the
# old ones must start again.
TLS_REGENERATED=0

tls_valid() {
  [[ -s $TLS_DIR/ca.pem && -s $TLS_DIR/server-cert.pem && -s $TLS_DIR/server-key.pem ]] &&
    openssl x509 -noout -checkend 86400 -in "$TLS_DIR/server-cert.pem" >/dev/null 2>&1 &&
    openssl x509 -noout -checkend 86400 -in "$TLS_DIR/ca.pem" >/dev/null 2>&1 &&
    openssl verify -CAfile "$TLS_DIR/ca.pem" -purpose sslserver "$TLS_DIR/server-cert.pem" >/dev/null 2>&1 &&
    tls_key_matches
}

tls_key_matches() {
  local cert_pub key_pub
  cert_pub=$(openssl x509 -noout -pubkey -in "$TLS_DIR/server-cert.pem" 2>/dev/null) || return 1
  key_pub=$(openssl pkey -pubout -in "$TLS_DIR/server-key.pem" 2>/dev/null) || return 1
  [[ -n $cert_pub && $cert_pub == "$key_pub" ]]
}

ensure_tls() {
  tls_valid && return 0
  log "generating a test CA and server certificate in $TLS_DIR"
  local tmp
  tmp=$(mktemp -d "$RUN_DIR/tls.tmp.XXXXXX")
  # Own openssl config files: the system openssl.cnf's default extensions must
  # not leak in.
  cat >"$tmp/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
x509_extensions = v3_ca
prompt = no
[dn]
CN = cht-fhir-mediator local test CA
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
  cat >"$tmp/server.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = localhost
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF
  (
    umask 077
    cd "$tmp"
    openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 \
      -config ca.cnf -keyout ca-key.pem -out ca.pem 2>/dev/null
    openssl req -new -newkey rsa:2048 -nodes -sha256 \
      -config server.cnf -keyout server-key.pem -out server.csr 2>/dev/null
    openssl x509 -req -sha256 -days 825 -in server.csr \
      -CA ca.pem -CAkey ca-key.pem -set_serial "0x$(openssl rand -hex 16)" \
      -extfile server.cnf -extensions v3_server -out server-cert.pem 2>/dev/null
    rm -f server.csr ca.cnf server.cnf
    # Certificates are public; the keys stay 0600.
    chmod 644 ca.pem server-cert.pem
  ) || {
    rm -rf -- "$tmp"
    die "openssl failed to generate the test certificates"
  }
  rm -rf -- "$TLS_DIR"
  mv -- "$tmp" "$TLS_DIR"
  tls_valid || die "generated certificates in $TLS_DIR do not verify"
  # shellcheck disable=SC2034 # read by the services using the certificates
  TLS_REGENERATED=1
}
