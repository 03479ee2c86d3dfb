#!/usr/bin/env bash
# The OS packages balans needs beyond its Python wheels (Debian/Ubuntu names).
# `make run`, `make test` and `.ci/run` call this first. It only looks for commands on PATH,
# shared libraries and files: when all are there it does nothing (fast, idempotent). As root it installs what is
# missing with apt-get; otherwise it prints one line saying what to install and why, and
# returns 0, so `make` goes on: `make run` then runs without Prometheus, and the tests that
# need a missing program fail with a message naming it.
set -euo pipefail

# command (or a shared library *.so.*, a file /..., or python:MODULE of $PYTHON)  package  why
wanted=(
  "python:ensurepip  python3-venv  Python's venv module: make's first step creates .tools and .venv with it"
  "chromium  chromium    headless browser for the portal tests (tests/browser)"
  "promtool  prometheus  checks the alert rules and dashboard queries, and balans run starts Prometheus"
  "libpangoft2-1.0.so.0  libpangoft2-1.0-0  text layout for WeasyPrint, which renders invoice PDFs"
  "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf  fonts-dejavu-core  a font with Latin and Cyrillic letters for the invoice PDFs"
)
[ "${1:-}" = "--with-make" ] && wanted+=("make  make  runs the Makefile targets")

missing=()
reasons=()
for entry in "${wanted[@]}"; do
  read -r command package why <<<"$entry"
  if [[ "$command" == python:* ]]; then
    present() { "${PYTHON:-python3}" -c "import ${1#python:}" 2>/dev/null; }
  elif [[ "$command" == /* ]]; then
    present() { [ -e "$1" ]; }
  elif [[ "$command" == *.so.* ]]; then
    present() { ldconfig -p 2>/dev/null | grep -q "$1"; }
  else
    present() { command -v "$1" >/dev/null 2>&1; }
  fi
  if ! present "$command"; then
    missing+=("$package")
    reasons+=("$package: $why")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  reason_text=$(printf '%s; ' "${reasons[@]}")
  echo "os-packages: please install ${missing[*]} (sudo apt-get install -y ${missing[*]}) - ${reason_text%; }" >&2
  exit 0
fi

echo "os-packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
