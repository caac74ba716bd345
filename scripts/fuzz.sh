#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of every parser and converter a request reaches
# (fuzz/fuzz_targets/): builds the targets, seeds each corpus from tests/fixtures/ and the
# converter snapshots, and runs each target for a time.
#
#   scripts/fuzz.sh [--seconds N] [--sanitizer none|address] [--quick] [target...]
#
# --quick builds for a short run (CI): opt-level 1, 16 codegen units, no debuginfo — a build of
# a fraction of the time, fewer executions per second; campaigns use the default build.
#
# FUZZ_NO_BUILD=1 runs the binaries already built (e.g. while the sources are being edited).
# Default: every target, 600 s each, --sanitizer none (stable Rust; ≈ 3× the executions of the
# AddressSanitizer build, which needs RUSTC_BOOTSTRAP=1). Prints each target's executions; a
# crash stops the run with exit 1 and leaves its input under fuzz/artifacts/<target>/ — turn it
# into a regression fixture in tests/fixtures/malformed/ (tests/malformed_inputs.rs sends it to
# every endpoint) before fixing it.
#
# cargo-fuzz is installed into the cache (${CHT_FHIR_MEDIATOR_CACHE:-~/.cache/cht-fhir-mediator}),
# keyed by version, when it is not on PATH.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

CARGO_FUZZ_VERSION=0.13.2
seconds=600
sanitizer=none
quick=false
targets=()
while (($#)); do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --sanitizer) sanitizer=$2; shift 2 ;;
    --quick) quick=true; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
((${#targets[@]})) || mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^cht-fhir-mediator-fuzz$')

cache=${CHT_FHIR_MEDIATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cht-fhir-mediator}
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  root="$cache/cargo-fuzz-$CARGO_FUZZ_VERSION"
  if [[ ! -x $root/bin/cargo-fuzz ]]; then
    echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION into $root" >&2
    cargo install --quiet --locked "cargo-fuzz@$CARGO_FUZZ_VERSION" --root "$root"
  fi
  export PATH="$root/bin:$PATH"
fi

# Seeds: what the tests already know is interesting, per target.
seed() { # target files...
  local dir="fuzz/corpus/$1"
  shift
  mkdir -p "$dir"
  local f
  for f in "$@"; do
    [[ -f $f ]] && cp -- "$f" "$dir/seed-$(basename -- "$f")"
  done
  return 0
}
snapshots=$(mktemp -d)
trap 'rm -rf "$snapshots"' EXIT
# The converter snapshots hold FHIR the mediator emits: a YAML header, then the JSON.
for snap in tests/snapshots/*.snap; do
  sed '1,/^---$/d' "$snap" >"$snapshots/$(basename -- "$snap" .snap).json"
done
seed cht_person tests/fixtures/cht/persons/*.json tests/fixtures/cht/invalid/person_*.json tests/fixtures/malformed/person_*.json
seed cht_report tests/fixtures/cht/reports/*.json tests/fixtures/cht/invalid/*.json tests/fixtures/malformed/*.json
seed fhir_json "$snapshots"/*.json tests/fixtures/malformed/*.json
seed fhir_xml tests/fixtures/malformed/*.xml
seed mappings mediator-config/forms.json mediator-config/outbound.json mediator-config/settings.toml
seed envelope tests/fixtures/malformed/unicode_escapes.json tests/fixtures/malformed/invalid_utf8.json
mkdir -p fuzz/corpus/cht_values
for v in '"3.50"' '61.25' '"yes"' '"10:30:00.000+03:00"' '"2026-02-01"' '"fever convulsions"' \
  '{"code":"w","valueQuantity":{"value":61.5,"unit":"kg"}}' '{"code":"t","valueTime":"07:05"}' '{"code":"c","valueCode":false}'; do
  printf '%s' "$v" >"fuzz/corpus/cht_values/seed-$(printf '%s' "$v" | sha256sum | cut -c1-12)"
done
# A readable XML seed for the XML target.
printf '%s' '<Patient xmlns="http://hl7.org/fhir"><id value="p1"/><name><text value="Amina Njeri"/></name><gender value="female"/><birthDate value="1990-05-12"/></Patient>' \
  >fuzz/corpus/fhir_xml/seed-patient.xml

cd fuzz
echo "fuzz: building the targets (release, --sanitizer $sanitizer)" >&2
if [[ ${FUZZ_NO_BUILD:-} != 1 ]]; then
  if $quick; then
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=0 \
      cargo fuzz build --sanitizer "$sanitizer" --codegen-units 16
  else
    cargo fuzz build --sanitizer "$sanitizer"
  fi
fi
status=0
for target in "${targets[@]}"; do
  log="artifacts/$target.log"
  mkdir -p "artifacts/$target"
  # -rss_limit_mb: a leak or a blow-up is a finding too. -timeout: one input must never take seconds.
  # The binary built above, run directly: `cargo fuzz run` would rebuild first whenever a source
  # file changed since (minutes, in release).
  if "target/x86_64-unknown-linux-gnu/release/$target" "corpus/$target" -artifact_prefix="artifacts/$target/" \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -1 | cut -d' ' -f2)
    printf 'fuzz: %-12s %8s executions in %ss, no crash (corpus %s inputs)\n' "$target" "${runs:-?}" "$seconds" \
      "$(find "corpus/$target" -type f | wc -l)"
  else
    status=1
    printf 'fuzz: %-12s CRASH — see fuzz/%s and fuzz/artifacts/%s/\n' "$target" "$log" "$target"
    grep -E 'panicked at|SUMMARY|ERROR: libFuzzer|deadly signal|Test unit written' "$log" | head -8 | sed 's/^/    /'
  fi
done
exit $status
