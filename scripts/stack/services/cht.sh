# shellcheck shell=bash
# The project's CHT API stand-in (tests/cht-standin, plain node, CHT 4.22
# semantics) on couch: records API, hydrate, people/places, users,
# contacts-by-phone, credentials, /medic (CHT's online/offline rules, the
# stock medic-client views, no Mango index; unindexed _find calls counted
# at /_standin/stats), and the outbound push engine (app_settings from
# STANDIN_APP_SETTINGS).
# It needs couch, where its state lives: `up` of either also starts the
# other, `down couch` also stops cht (a new couch starts empty), but
# `down cht` stops only the CHT API and keeps couch's data (a test of
# "CHT down").

stack_service cht 50
stack_needs couch
stack_port CHT_PORT 5988
# The CHT configuration an app builder pastes in, when the repo has it.
if [[ -f $REPO_DIR/mediator-config/cht/app_settings.json ]]; then
  stack_setting STANDIN_APP_SETTINGS "$REPO_DIR/mediator-config/cht/app_settings.json"
else
  stack_setting STANDIN_APP_SETTINGS "$REPO_DIR/tests/cht-standin/app_settings.example.json"
fi
# Tests want failed pushes retried in seconds (CHT itself: every 5 minutes).
stack_setting STANDIN_OUTBOUND_RETRY_MS 2000

CHT_RUN_DIR="$RUN_DIR/cht"

check_cht() {
  [[ $(http_status "http://$BIND_HOST:$CHT_PORT/api/info") == 200 ]]
}

start_cht() {
  if service_running cht; then
    log "cht: already running (pid $(service_pid cht))"
  else
    port_free_or_die cht "$CHT_PORT"
    [[ -f $STANDIN_APP_SETTINGS ]] || die "STANDIN_APP_SETTINGS: no file $STANDIN_APP_SETTINGS"
    mkdir -p "$CHT_RUN_DIR"
    launch cht "$CHT_RUN_DIR" env -i PATH="$PATH" HOME="$HOME" \
      STANDIN_HOST="$BIND_HOST" STANDIN_PORT="$CHT_PORT" COUCH_URL="$(couch_url)" \
      COUCH_USER="$COUCH_ADMIN_USER" COUCH_PASSWORD="$COUCH_ADMIN_PASSWORD" \
      STANDIN_APP_SETTINGS="$STANDIN_APP_SETTINGS" STANDIN_OUTBOUND_RETRY_MS="$STANDIN_OUTBOUND_RETRY_MS" \
      node "$REPO_DIR/tests/cht-standin/server.mjs"
  fi
  wait_until cht "GET http://$BIND_HOST:$CHT_PORT/api/info answering 200" check_cht
}

env_cht() {
  env_var STACK_CHT_URL "http://$BIND_HOST:$CHT_PORT"
}
