#!/usr/bin/env bash
# The whole test suite, as the README's test command and CI run it:
# WASM build, type-check, lint/format check, as-pect specs for assembly/, Node tests for src/.
# Tests that need root (namespaces, TAP devices, etcd) run when this runs as root, and are
# reported as skipped otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "build (WASM release + debug, TypeScript)"
npm run --silent build

step "type-check"
npm run --silent typecheck

step "lint and format check (biome)"
npm run --silent lint

step "as-pect specs (assembly/)"
npx asp --config as-pect.config.js --summary 2>&1 | grep -v '^npm warn' | tail -n 40
test "${PIPESTATUS[0]}" -eq 0

step "node tests (src/)"
shopt -s globstar nullglob
# Node 20's --test takes file names, not globs. VXNET_TEST narrows the run to matching files.
files=(test/**/*.test.ts)
if [[ -n "${VXNET_TEST:-}" ]]; then mapfile -t files < <(printf '%s\n' "${files[@]}" | grep -E "$VXNET_TEST"); fi
node --import tsx --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
