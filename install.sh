#!/usr/bin/env bash
# Installs afbox: system packages (with apt when root), a virtualenv with afbox, and `afbox` on PATH.
# Idempotent: run it again to update. --dev adds what the test suite needs.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
DEV=0
usage() { echo "usage: ./install.sh [--dev]   (--dev: also install test dependencies)"; }
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option '$arg'"; usage; exit 2 ;;
  esac
done

say() { printf '[afbox install] %s\n' "$*"; }

# --- system packages --------------------------------------------------------------------------
APT_PKGS=(xrootd-server xrootd-server-plugins xrootd-client xrootd-scitokens-plugins openssl python3-venv bubblewrap)
# JupyterHub's proxy (configurable-http-proxy) runs on Node; a Node from elsewhere (nodesource) will do
command -v npm >/dev/null || APT_PKGS+=(nodejs npm)
# debootstrap: the single-file bundle's tests unpack it in a fresh minimal Debian root;
# chromium + chromium-driver: the browser tests drive a real headless Chromium (Selenium)
[ "$DEV" = 1 ] && APT_PKGS+=(tmux procps slurm-wlm munge debootstrap chromium chromium-driver)
missing=()
if command -v dpkg-query >/dev/null; then
  for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "not root: install the system packages yourself (XCache needs them; the rest works without):"
    say "  sudo apt-get install ${missing[*]}"
  fi
else
  say "system packages present"
fi

# --- python environment -----------------------------------------------------------------------
PY="${PYTHON:-python3}"
# A class's students run afbox's Python as their own unix users: as root, never take one that lives
# in root's home (pyenv), which they cannot enter, when the system has one that will do.
if [ -z "${PYTHON:-}" ] && [ "$(id -u)" = 0 ] && [[ "$(readlink -f "$(command -v python3)")" == /root/* ]] \
   && /usr/bin/python3 -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  PY=/usr/bin/python3
fi
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  say "afbox needs Python >= 3.11; found: $("$PY" --version 2>&1 || echo none). Set PYTHON=/path/to/python3.x"
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtualenv $VENV"
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
EXTRA=""
[ "$DEV" = 1 ] && EXTRA="[dev]"
say "installing afbox${EXTRA} into $VENV"
"$VENV/bin/python" -m pip install -q -e "$HERE$EXTRA"

# --- JupyterHub's proxy for classes (afbox up --profile masterclass), next to the venv's programs ----
if command -v npm >/dev/null; then
  if [ ! -x "$VENV/chp/node_modules/.bin/configurable-http-proxy" ]; then
    say "installing configurable-http-proxy (npm) into $VENV/chp"
    npm install --silent --prefix "$VENV/chp" configurable-http-proxy@4 >/dev/null
  fi
  ln -sf ../chp/node_modules/.bin/configurable-http-proxy "$VENV/bin/configurable-http-proxy"
else
  say "npm not found: classes (profile masterclass) need it for JupyterHub's proxy: apt-get install nodejs npm"
fi

# --- PATH -------------------------------------------------------------------------------------
if [ "$(id -u)" = 0 ]; then BIN_DIR=/usr/local/bin; else BIN_DIR="$HOME/.local/bin"; fi
mkdir -p "$BIN_DIR"
ln -sf "$VENV/bin/afbox" "$BIN_DIR/afbox"
case ":$PATH:" in
  *":$BIN_DIR:"*) say "done: run 'afbox up'" ;;
  *) say "done: $BIN_DIR is not on your PATH; run '$VENV/bin/afbox up' or add it: export PATH=\"$BIN_DIR:\$PATH\"" ;;
esac
