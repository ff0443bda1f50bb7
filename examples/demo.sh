#!/usr/bin/env bash
# Demo of the sandboxed runtime: inspect a guest, preview what it would do, watch denials.
set -euo pipefail
cd "$(dirname "$0")/.."
latch=./target/debug/latch
g=target/wasm32-wasip2/guest
step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}" || true; }

step "What is in this guest? (sha256 to pin, imports, exports, describe())" \
  $latch guest inspect $g/bench_guest.wasm
step "Preview exactly what it would run, without running anything" \
  $latch guest call $g/bench_guest.wasm discover --config '{"calls":2}' --allow 127.0.0.2:22 --dry-run
step "A guest reaching a server outside its allow list is refused before anything is sent" \
  $latch guest call $g/denial_reach_unlisted.wasm discover --dry-run
step "A guest that loops forever is stopped at its deadline" \
  $latch guest call $g/denial_spin.wasm discover --deadline 2s
step "A guest that allocates without bound hits its memory cap" \
  $latch guest call $g/denial_balloon.wasm discover --memory 32MiB
step "A guest importing an interface Latch does not lend does not even load" \
  $latch guest inspect $g/denial_foreign_import.wasm
