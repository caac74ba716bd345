#!/usr/bin/env bash
# One-shot configurator of the cht-fhir-mediator stack (service `configurator` in
# docker-compose.yml). It does, in order:
#   1. OpenHIM: log in as OPENHIM_USERNAME; if the core still has its factory password
#      ("openhim-password"), change it to OPENHIM_PASSWORD first;
#   2. OpenHIM: create (or update) the client CHT pushes as (CHT_CLIENT_ID, roles
#      CHT_CLIENT_ROLES) and the EMR's client (EMR_CLIENT_ID, roles EMR_CLIENT_ROLES), Basic auth,
#      passwordHash = hex(sha512(password + salt));
#   3. OpenHIM: wait until the mediator MEDIATOR_URN has registered, then install those of its
#      default channels that do not exist yet (POST /mediators/{urn}/channels);
#   4. CHT: store the CHT client's password in CHT's vault under CHT_CREDENTIAL_KEY
#      (PUT /api/v1/credentials/{key}), the key app_settings' outbound auth names;
#   5. CHT: merge CHT_APP_SETTINGS (mediator-config/cht/app_settings.json) into CHT's settings
#      (PUT /api/v1/settings): objects merged key by key, arrays (e.g. a permission's roles)
#      extended, never shortened; nothing is written when CHT already has it all.
# Every step is idempotent: run it again after changing a password or app_settings.json
# (`docker compose run --rm configurator`). Exit status: 0 done, 1 a step failed (the log says
# which and why).
#
# OPENHIM_AUTH=basic (default; OpenHIM core >= 7.1) or token (every core; used to try this
# script against the 4.0.5 core of the project's local test stack).
set -euo pipefail

# What docker-compose.yml must give this script (tests/deployment.rs checks the two agree).
REQUIRED_VARS=(
  OPENHIM_API_URL OPENHIM_USERNAME OPENHIM_PASSWORD MEDIATOR_URN
  CHT_CLIENT_ID CHT_CLIENT_ROLES CHT_CLIENT_PASSWORD
  EMR_CLIENT_ID EMR_CLIENT_ROLES EMR_CLIENT_PASSWORD
  CHT_URL CHT_ADMIN_USERNAME CHT_ADMIN_PASSWORD CHT_CREDENTIAL_KEY CHT_APP_SETTINGS
)
OPTIONAL_VARS=(OPENHIM_CA_BUNDLE OPENHIM_AUTH WAIT_SECONDS)

readonly FACTORY_PASSWORD=openhim-password

log() { printf '%s configurator: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

TMP=$(mktemp -d)
trap 'rm -rf -- "$TMP"' EXIT
BODY="$TMP/body"
STATUS=000

# ---------------------------------------------------------------- helpers

# http METHOD URL [curl args...]: the answer's status goes to STATUS, its body to $BODY.
http() {
  local method=$1 url=$2
  shift 2
  : >"$BODY" # no stale body when curl gets no answer
  STATUS=$(curl -sS -o "$BODY" -w '%{http_code}' --max-time 30 -X "$method" "$@" "$url") || STATUS=000
}

# The last answer's body, shortened, for error messages.
answer() { head -c 300 "$BODY" 2>/dev/null | tr '\n' ' '; }

sha512() { printf '%s' "$1" | sha512sum | cut -d' ' -f1; }
random_hex() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }
urlencode() { jq -rn --arg v "$1" '$v | @uri'; }

# A curl config file holding user:password, so no password appears in a process list.
curl_user_file() { # file user password
  local escaped
  escaped=$(printf '%s:%s' "$2" "$3" | sed 's/[\\"]/\\&/g')
  (umask 077 && printf 'user = "%s"\n' "$escaped" >"$1")
}

# wait_for DESCRIPTION COMMAND...: retries COMMAND every 5 s for up to WAIT_SECONDS.
wait_for() {
  local what=$1 deadline
  shift
  deadline=$(($(date +%s) + ${WAIT_SECONDS:-600}))
  until "$@"; do
    (($(date +%s) < deadline)) || die "gave up waiting for $what after ${WAIT_SECONDS:-600} s (last answer: HTTP $STATUS $(answer))"
    log "waiting for $what (HTTP $STATUS)"
    sleep 5
  done
}

# ---------------------------------------------------------------- OpenHIM API

TLS_ARGS=()
# openhim PASSWORD METHOD PATH [JSON]: one API call as OPENHIM_USERNAME with that password.
openhim() {
  local password=$1 method=$2 path=$3 auth=()
  local url="${OPENHIM_API_URL%/}$path"
  if [[ ${OPENHIM_AUTH:-basic} == token ]]; then
    # Token scheme: passhash = sha512(salt + password); per request
    # auth-token = sha512(passhash + auth-salt + auth-ts).
    http GET "${OPENHIM_API_URL%/}/authenticate/$(urlencode "$OPENHIM_USERNAME")" "${TLS_ARGS[@]}"
    [[ $STATUS == 200 ]] || return 0
    local salt passhash ts request_salt
    salt=$(jq -r .salt "$BODY")
    passhash=$(sha512 "$salt$password")
    ts=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
    request_salt=$(random_hex)
    auth=(-H "auth-username: $OPENHIM_USERNAME" -H "auth-ts: $ts" -H "auth-salt: $request_salt"
      -H "auth-token: $(sha512 "$passhash$request_salt$ts")")
  else
    curl_user_file "$TMP/openhim-user" "$OPENHIM_USERNAME" "$password"
    auth=(-K "$TMP/openhim-user")
  fi
  if (($# > 3)); then
    printf '%s' "$4" >"$TMP/request.json"
    auth+=(-H 'Content-Type: application/json' --data-binary "@$TMP/request.json")
  fi
  http "$method" "$url" "${TLS_ARGS[@]}" -H 'Accept: application/json' "${auth[@]}"
}

api() { openhim "$OPENHIM_PASSWORD" "$@"; }

openhim_up() {
  http GET "${OPENHIM_API_URL%/}/heartbeat" "${TLS_ARGS[@]}"
  [[ $STATUS == 200 ]]
}

can_log_in() { # password
  openhim "$1" GET "/users/$(urlencode "$OPENHIM_USERNAME")"
  [[ $STATUS == 200 ]]
}

ensure_api_password() {
  if can_log_in "$OPENHIM_PASSWORD"; then
    log "OpenHIM: logged in as $OPENHIM_USERNAME"
    return
  fi
  if [[ $OPENHIM_PASSWORD == "$FACTORY_PASSWORD" ]] || ! can_log_in "$FACTORY_PASSWORD"; then
    die "OpenHIM refuses $OPENHIM_USERNAME with OPENHIM_PASSWORD (HTTP $STATUS $(answer))"
  fi
  log "OpenHIM: $OPENHIM_USERNAME still has the factory password; changing it to OPENHIM_PASSWORD"
  local user salt
  # The whole user goes back (a partial update resets fields such as groups on some cores),
  # without its old password fields.
  user=$(jq -c 'del(._id, .__v, .passwordHash, .passwordSalt, .passwordAlgorithm)' "$BODY")
  salt=$(random_hex)
  # 1. The token-scheme hash, sha512(salt + password) (every core; what Basic checks before 8.0).
  openhim "$FACTORY_PASSWORD" PUT "/users/$(urlencode "$OPENHIM_USERNAME")" "$(jq -c \
    --arg s "$salt" --arg h "$(sha512 "$salt$OPENHIM_PASSWORD")" \
    '. + {passwordAlgorithm: "sha512", passwordSalt: $s, passwordHash: $h}' <<<"$user")"
  [[ $STATUS == 200 ]] || die "OpenHIM: changing the token password failed (HTTP $STATUS $(answer))"
  # 2. The local passport (core 8: what Basic auth checks); older cores ignore the field.
  local current=$FACTORY_PASSWORD
  can_log_in "$current" || current=$OPENHIM_PASSWORD
  openhim "$current" PUT "/users/$(urlencode "$OPENHIM_USERNAME")" \
    "$(jq -c --arg p "$OPENHIM_PASSWORD" '. + {password: $p}' <<<"$user")"
  [[ $STATUS == 200 ]] || die "OpenHIM: changing the password failed (HTTP $STATUS $(answer))"
  can_log_in "$OPENHIM_PASSWORD" || die "OpenHIM: the new password does not work (HTTP $STATUS $(answer))"
  ! can_log_in "$FACTORY_PASSWORD" || die "OpenHIM: the factory password still works; change it in the console"
  log "OpenHIM: password of $OPENHIM_USERNAME changed"
}

# ensure_client CLIENT_ID NAME ROLES(comma-separated) PASSWORD
ensure_client() {
  local id=$1 name=$2 roles password=$4 salt existing doc
  roles=$(jq -cn --arg r "$3" '$r | split(",") | map(gsub("^\\s+|\\s+$"; "")) | map(select(. != ""))')
  [[ $roles != "[]" ]] || die "client $id needs at least one role"
  api GET /clients
  [[ $STATUS == 200 ]] || die "OpenHIM: GET /clients answered HTTP $STATUS $(answer)"
  existing=$(jq -c --arg id "$id" 'map(select(.clientID == $id))[0] // empty' "$BODY")
  salt=$(random_hex)
  # Roles an admin added by hand are kept.
  doc=$(jq -cn --arg id "$id" --arg name "$name" --argjson roles "$roles" --argjson old "${existing:-null}" \
    --arg s "$salt" --arg h "$(sha512 "$password$salt")" \
    '{clientID: $id, name: ($old.name // $name), roles: ((($old.roles // []) + $roles) | unique),
      passwordAlgorithm: "sha512", passwordSalt: $s, passwordHash: $h}')
  if [[ -z $existing ]]; then
    api POST /clients "$doc"
    [[ $STATUS == 201 ]] || die "OpenHIM: creating client $id failed (HTTP $STATUS $(answer)); a role may not be named like a client"
    log "OpenHIM: created client $id (roles $(jq -r '.roles | join(",")' <<<"$doc"))"
  else
    api PUT "/clients/$(jq -r ._id <<<"$existing")" "$doc"
    [[ $STATUS == 200 ]] || die "OpenHIM: updating client $id failed (HTTP $STATUS $(answer))"
    log "OpenHIM: updated client $id (roles $(jq -r '.roles | join(",")' <<<"$doc"), password set)"
  fi
}

mediator_registered() {
  api GET "/mediators/$(urlencode "$MEDIATOR_URN")"
  [[ $STATUS == 200 ]]
}

# Installs the default channels the core does not have yet. Installing one that exists fails
# (channel names are unique), so a plain `POST .../channels []` works only the first time.
install_channels() {
  local wanted missing=()
  mediator_registered || die "OpenHIM: GET /mediators/{urn} answered HTTP $STATUS $(answer)"
  wanted=$(jq -r '.defaultChannelConfig[].name' "$BODY")
  api GET /channels
  [[ $STATUS == 200 ]] || die "OpenHIM: GET /channels answered HTTP $STATUS $(answer)"
  local name
  while IFS= read -r name; do
    [[ -n $name ]] || continue
    jq -e --arg n "$name" 'any(.[]; .name == $n)' "$BODY" >/dev/null || missing+=("$name")
  done <<<"$wanted"
  if ((${#missing[@]} == 0)); then
    log "OpenHIM: the default channels of $MEDIATOR_URN are installed"
    return
  fi
  api POST "/mediators/$(urlencode "$MEDIATOR_URN")/channels" "$(jq -cn '$ARGS.positional' --args "${missing[@]}")"
  [[ $STATUS == 201 ]] || die "OpenHIM: installing channels failed (HTTP $STATUS $(answer))"
  log "OpenHIM: installed channels: $(printf '"%s" ' "${missing[@]}")"
}

# ---------------------------------------------------------------- CHT API

cht() { # METHOD PATH [curl args...]
  local method=$1 path=$2
  shift 2
  http "$method" "${CHT_URL%/}$path" -K "$TMP/cht-user" "$@"
}

cht_up() {
  cht GET /api/v1/settings
  [[ $STATUS == 200 ]]
}

# The outbound pushes of app_settings must authenticate as the client this script creates,
# with the credential it stores: refuse a file that says otherwise before changing anything.
check_app_settings() {
  jq -e 'type == "object"' "$CHT_APP_SETTINGS" >/dev/null 2>&1 || die "$CHT_APP_SETTINGS is not a JSON object"
  local wrong
  wrong=$(jq -r --arg u "$CHT_CLIENT_ID" --arg k "$CHT_CREDENTIAL_KEY" '(.outbound // {}) | to_entries[]
    | select(.value.destination.auth.username != $u or .value.destination.auth.password_key != $k) | .key' \
    "$CHT_APP_SETTINGS")
  [[ -z $wrong ]] || die "outbound $(tr '\n' ' ' <<<"$wrong")in $CHT_APP_SETTINGS must use auth.username $CHT_CLIENT_ID and password_key $CHT_CREDENTIAL_KEY"
}

store_cht_credential() {
  printf '%s' "$CHT_CLIENT_PASSWORD" >"$TMP/credential"
  cht PUT "/api/v1/credentials/$(urlencode "$CHT_CREDENTIAL_KEY")" \
    -H 'Content-Type: text/plain' --data-binary "@$TMP/credential"
  rm -f -- "$TMP/credential"
  [[ $STATUS == 200 ]] || die "CHT: storing credential $CHT_CREDENTIAL_KEY failed (HTTP $STATUS $(answer))"
  log "CHT: stored credential $CHT_CREDENTIAL_KEY"
}

merge_cht_settings() {
  cht GET /api/v1/settings
  [[ $STATUS == 200 ]] || die "CHT: GET /api/v1/settings answered HTTP $STATUS $(answer)"
  # CHT's PUT merges objects key by key but replaces arrays, so the patch carries each array
  # already extended with what CHT has. `_comment` is documentation, not a setting.
  jq -c --slurpfile ours "$CHT_APP_SETTINGS" '
    def merge($cur; $new):
      if ($cur | type) == "object" and ($new | type) == "object" then
        reduce ($new | keys_unsorted[]) as $k ({}; .[$k] = merge($cur[$k]; $new[$k]))
      elif ($cur | type) == "array" and ($new | type) == "array" then
        reduce $new[] as $x ($cur; if any(.[]; . == $x) then . else . + [$x] end)
      else $new end;
    def project($cur; $new):
      if ($cur | type) == "object" and ($new | type) == "object" then
        reduce ($new | keys_unsorted[]) as $k ({}; .[$k] = project($cur[$k]; $new[$k]))
      else $cur end;
    . as $cur | merge($cur; $ours[0] | del(._comment)) as $patch
    | {patch: $patch, unchanged: (project($cur; $patch) == $patch)}' "$BODY" >"$TMP/settings.json"
  if jq -e .unchanged "$TMP/settings.json" >/dev/null; then
    log "CHT: settings already contain $CHT_APP_SETTINGS"
    return
  fi
  jq -c .patch "$TMP/settings.json" >"$TMP/patch.json"
  cht PUT /api/v1/settings -H 'Content-Type: application/json' --data-binary "@$TMP/patch.json"
  [[ $STATUS == 200 ]] || die "CHT: PUT /api/v1/settings answered HTTP $STATUS $(answer)"
  log "CHT: merged $CHT_APP_SETTINGS into the settings (keys: $(jq -r '.patch | keys | join(", ")' "$TMP/settings.json"))"
}

# ---------------------------------------------------------------- main

main() {
  local name
  for name in "${REQUIRED_VARS[@]}"; do
    [[ -n ${!name:-} ]] || die "$name must be set"
  done
  for name in "${OPTIONAL_VARS[@]}"; do
    [[ -z ${!name:-} ]] || log "$name=${!name}"
  done
  [[ ${OPENHIM_AUTH:-basic} =~ ^(basic|token)$ ]] || die "OPENHIM_AUTH must be basic or token"
  if [[ -n ${OPENHIM_CA_BUNDLE:-} ]]; then
    [[ -r $OPENHIM_CA_BUNDLE ]] || die "OPENHIM_CA_BUNDLE $OPENHIM_CA_BUNDLE is not readable (run docker/make-tls.sh)"
    TLS_ARGS=(--cacert "$OPENHIM_CA_BUNDLE")
  fi
  curl_user_file "$TMP/cht-user" "$CHT_ADMIN_USERNAME" "$CHT_ADMIN_PASSWORD"
  check_app_settings

  wait_for "the OpenHIM core API at $OPENHIM_API_URL" openhim_up
  ensure_api_password
  ensure_client "$CHT_CLIENT_ID" "CHT outbound push" "$CHT_CLIENT_ROLES" "$CHT_CLIENT_PASSWORD"
  ensure_client "$EMR_CLIENT_ID" "EMR" "$EMR_CLIENT_ROLES" "$EMR_CLIENT_PASSWORD"
  wait_for "mediator $MEDIATOR_URN to register with OpenHIM" mediator_registered
  install_channels

  wait_for "the CHT API at $CHT_URL" cht_up
  store_cht_credential
  merge_cht_settings
  log "done"
}

main "$@"
