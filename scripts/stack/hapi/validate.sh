#!/usr/bin/env bash
# Offline FHIR R4 validation (HL7's validation engine through HAPI's
# FhirInstanceValidator) of JSON resources or Bundles against base R4 and the
# conformance resources (*.json) of PROFILES_DIR. One JVM for all files.
#
#   validate.sh [--info] PROFILES_DIR FILE_OR_DIR...   one JSON line per *.json file
#   validate.sh [--info] PROFILES_DIR --stdin          one resource per input line
#                                                      (NDJSON), one answer line each
#
# Answer: {"file": F | "line": N, "errors": [{"path": "Patient.identifier[0].system",
#   "message": ..., "id": HL7 message id, and inside a Bundle "resource": "Patient/x",
#   "resource_path": "Patient.identifier[0].system"}],
#   "warnings": [...]} (and "information" with --info). Exit 0 when no errors,
#   1 when some input had errors, 2 on bad usage. Logs on stderr.
# Needs install.sh first (HAPI_CACHE, see env.sh). HAPI_JAVA_OPTS overrides
# the JVM options (default "-Xmx768m -XX:+UseSerialGC -XX:TieredStopAtLevel=1").
set -euo pipefail
HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=env.sh
. "$HERE/env.sh"
hapi_exec validator ValidatorCli "$@"
