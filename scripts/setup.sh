#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: system packages, .venv, Python packages.
# Called by `make setup` (and so by `make test` and `make demo`). Never prompts.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(make gcc
  gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
  clang
  chromium  # the headless browser of the documentation site's test (tests/test_docs_site.py)
  libstdc++-arm-none-eabi-newlib)  # C++ for Cortex-M: TinyMPC's code in bench/structured_qp.py --tinympc
PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP="$VENV/.rlmpc-setup"

log() { printf '[setup] %s\n' "$*"; }

# --- Debian packages ---------------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# libFuzzer (make fuzz, a protocol test): the compiler-rt package of the distribution's clang
clang_rt="libclang-rt-$(clang -dumpversion | cut -d. -f1)-dev"
if ! dpkg-query -W -f='${Status}' "$clang_rt" 2>/dev/null | grep -q "install ok installed"; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  apt-cache show "$clang_rt" >/dev/null 2>&1 || $SUDO apt-get update -q  # (lists may be stale)
  if apt-cache show "$clang_rt" >/dev/null 2>&1; then
    log "installing Debian package: $clang_rt"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "$clang_rt"
  else
    log "warning: no package $clang_rt here; libFuzzer (make fuzz) may be missing"
  fi
fi

# --- virtual environment -----------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]; then
  log "installing Python packages into $VENV"
  "${PIP[@]}" install --upgrade pip
  # comma-deps-acados first: it vendors a slim CasADi that casadi==3.8.2 must overwrite.
  "${PIP[@]}" install "comma-deps-acados>=0.2.2,<0.2.3"
  "${PIP[@]}" install --force-reinstall --no-deps "casadi==3.8.2"
  "${PIP[@]}" install -e ".[dev,scale,docs]"
  echo "$want" > "$STAMP"
fi

# A CasADi overwritten by a later acados reinstall loses its plugins: repair it.
if ! "$VENV/bin/python" -c "import casadi, sys; sys.exit(0 if casadi.__version__ == '3.8.2' and casadi.has_nlpsol('ipopt') else 1)" 2>/dev/null; then
  log "repairing CasADi (the slim copy from comma-deps-acados is active)"
  "${PIP[@]}" install --force-reinstall --no-deps "casadi==3.8.2"
fi
# Vendored third-party files shipped in the package (DAQP sources, aarch64 acados): fetched once
"$VENV/bin/python" -m rlmpc.codegen.third_party >/dev/null
log "ready"
