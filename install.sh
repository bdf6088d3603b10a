#!/usr/bin/env bash
# The one set-up script for the GAS node software.
#
#   ./install.sh                 runtime: .venv with the project (editable) + pm2
#   ./install.sh --dev           also the test extra (pytest, hypothesis, respx, ruff)
#   ./install.sh --no-system-deps  never touch apt (no system package is required today)
#   ./install.sh --help
#
# It is idempotent: a second run with the same inputs checks a stamp and finishes in seconds.
# pm2 is installed from npm into ./.node (a project-local prefix) when it is not on PATH;
# gascli finds it there by itself. Nothing here needs sudo.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"
NODE_PREFIX="$ROOT/.node"
PM2_VERSION="7.0.4"
MIN_PY_MINOR=10   # Python 3.10+
MIN_NODE_MAJOR=18 # pm2 7 needs node >= 18
# Debian/Ubuntu packages the project needs. None today: PyAV bundles FFmpeg, espeak comes
# from a wheel. Kept as a list so a later need has one obvious place to go.
SYSTEM_PACKAGES=()

DEV=0
SYSTEM_DEPS=1
FORCE=0

if [ -t 1 ]; then BLUE=$'\033[1;34m'; RED=$'\033[1;31m'; RESET=$'\033[0m'; else BLUE=""; RED=""; RESET=""; fi
say()  { printf '%s==>%s %s\n' "$BLUE" "$RESET" "$*"; }
ok()   { printf '    %s\n' "$*"; }
die()  { printf '%serror:%s %s\n' "$RED" "$RESET" "$*" >&2; exit 1; }

usage() {
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  cat <<'EOF'
Options:
  --dev              install the test extra as well
  --no-system-deps   skip apt packages (none are required today)
  --force            reinstall the Python packages even if the stamp says nothing changed
  -h, --help         show this help
Environment:
  PYTHON             interpreter used to create .venv (default: python3)
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --dev) DEV=1 ;;
    --no-system-deps) SYSTEM_DEPS=0 ;;
    --force) FORCE=1 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
  shift
done

# --- 1. Python -------------------------------------------------------------------------------
say "Checking Python"
command -v "$PYTHON" >/dev/null 2>&1 \
  || die "$PYTHON not found. Install Python >= 3.$MIN_PY_MINOR (e.g. 'apt-get install python3 python3-venv') or set PYTHON=/path/to/python3."
PY_VER="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
PY_MINOR="${PY_VER#3.}"
if [ "${PY_VER%%.*}" != "3" ] || [ "$PY_MINOR" -lt "$MIN_PY_MINOR" ]; then
  die "Python $PY_VER is too old: GAS needs Python >= 3.$MIN_PY_MINOR (found $PYTHON = $PY_VER)."
fi
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null \
  || die "$PYTHON has no venv/ensurepip module. On Debian/Ubuntu: apt-get install python3-venv"
ok "$PYTHON is Python $PY_VER"

# --- 2. system packages (optional) -----------------------------------------------------------
if [ "$SYSTEM_DEPS" = 1 ] && [ ${#SYSTEM_PACKAGES[@]} -gt 0 ]; then
  missing=()
  for p in "${SYSTEM_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    say "Installing system packages: ${missing[*]}"
    if [ "$(id -u)" = 0 ]; then apt-get install -y "${missing[@]}";
    else die "system packages missing (${missing[*]}); install them or rerun with --no-system-deps"; fi
  fi
elif [ "$SYSTEM_DEPS" = 1 ]; then
  say "System packages: none required"
else
  say "Skipping system packages (--no-system-deps)"
fi

# --- 3. virtual environment + project --------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "Creating virtual environment in .venv"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi

EXTRAS=""
[ "$DEV" = 1 ] && EXTRAS="[test]"
# The stamp covers everything that decides what pip installs.
STAMP_FILE="$VENV/.gas-install-stamp"
STAMP="$( { cat pyproject.toml; echo "extras=$EXTRAS"; "$VENV/bin/python" -V; } | sha256sum | cut -d' ' -f1)"
if [ "$FORCE" = 0 ] && [ -f "$STAMP_FILE" ] && [ "$(cat "$STAMP_FILE")" = "$STAMP" ] \
   && "$VENV/bin/python" -c 'import gas, gascli' 2>/dev/null; then
  say "Python packages are up to date (.venv${EXTRAS:+, $EXTRAS})"
else
  say "Installing the project into .venv${EXTRAS:+ with $EXTRAS} (torch==2.13.0 and friends; the first run takes a minute or two)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".$EXTRAS"
  "$VENV/bin/python" -m pip check >/dev/null || { "$VENV/bin/python" -m pip check; die "pip check found broken requirements"; }
  echo "$STAMP" > "$STAMP_FILE"
  ok "installed: $("$VENV/bin/python" -c 'import importlib.metadata as m; print(", ".join(f"{p} {m.version(p)}" for p in ("gas-node", "torch", "bittensor")))')"
fi

# --- 4. pm2 ----------------------------------------------------------------------------------
if command -v pm2 >/dev/null 2>&1; then
  say "pm2 found on PATH: $(command -v pm2)"
elif [ -x "$NODE_PREFIX/bin/pm2" ]; then
  say "pm2 found in .node/bin/pm2"
else
  say "Installing pm2 $PM2_VERSION from npm into .node/ (project-local, no sudo)"
  command -v node >/dev/null 2>&1 || die "node not found: pm2 needs Node.js >= $MIN_NODE_MAJOR (e.g. 'apt-get install nodejs npm')."
  command -v npm  >/dev/null 2>&1 || die "npm not found: pm2 is installed with npm (e.g. 'apt-get install npm')."
  NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
  [ "$NODE_MAJOR" -ge "$MIN_NODE_MAJOR" ] \
    || die "Node.js $(node --version) is too old: pm2 $PM2_VERSION needs Node.js >= $MIN_NODE_MAJOR."
  npm install --global --prefix "$NODE_PREFIX" --no-audit --no-fund --loglevel=error "pm2@$PM2_VERSION" >/dev/null
  [ -x "$NODE_PREFIX/bin/pm2" ] || die "npm finished but $NODE_PREFIX/bin/pm2 is missing"
  ok "pm2 $(node -p "require('$NODE_PREFIX/lib/node_modules/pm2/package.json').version") installed in .node/bin"
fi

say "Done. Try: .venv/bin/gascli --help"
