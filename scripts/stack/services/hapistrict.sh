# shellcheck shell=bash
# HAPI FHIR as a strict deployment configures it: client_id_strategy
# NOT_ALLOWED (a PUT of a new id is refused: the mediator must write by
# identifier) and request validation ON against base R4 plus the mediator's
# fhir-profiles/, loaded into it at start (a write that breaks them is
# refused). Same install, data rules and figures as hapi.
# Base URL http://127.0.0.1:$HAPISTRICT_PORT/fhir.

stack_service hapistrict 41
stack_port HAPISTRICT_PORT 8092

hapistrict_installed() { hapi_installed; }

install_hapistrict() { install_hapi; }

check_hapistrict() { hapi_answers "$HAPISTRICT_PORT"; }

start_hapistrict() {
  hapi_start hapistrict "$HAPISTRICT_PORT" validate "$REPO_DIR/fhir-profiles" -- --client-id-strategy NOT_ALLOWED
}

env_hapistrict() {
  env_var STACK_HAPISTRICT_URL "http://$BIND_HOST:$HAPISTRICT_PORT/fhir"
}
