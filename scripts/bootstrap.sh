#!/usr/bin/env bash
# Set up the development environment for Retainers. Called by the Makefile.
#
#   scripts/bootstrap.sh run    Debian packages for the app + .venv with the project (make run)
#   scripts/bootstrap.sh test   same, plus the packages the tests use (make test, make setup)
#   scripts/bootstrap.sh lock   regenerate constraints.txt on Python 3.12 (make lock)
#
# Idempotent: a second run only checks things (a few hundred milliseconds).
# Environment: PYTHON=/path/to/python3.12 picks the interpreter for a new .venv.
set -euo pipefail

# --- Debian packages ---------------------------------------------------------
# What `make run` needs: WeasyPrint (invoice PDFs) loads Pango and HarfBuzz's
# subsetter at import time and needs at least one font.
APT_PACKAGES_RUN="libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core"
# What `make test` adds: pdftotext to read generated PDFs, docker-compose (v1,
# client only) to validate docker-compose.yml, Chromium for browser tests.
APT_PACKAGES_TEST="poppler-utils docker-compose chromium"

cd "$(dirname "$0")/.."
VENV=.venv
# Inside .venv so that recreating the venv also invalidates it.
STAMP=$VENV/.install.stamp

say() { echo "bootstrap: $*"; }
die() { echo "bootstrap: error: $*" >&2; exit 1; }

# --- Python discovery --------------------------------------------------------
# Prints candidate interpreters, one per line, best guesses first. Nothing here
# is trusted: every candidate is run before it is used (pyenv shims, for one,
# exist on PATH but fail unless pyenv selects that version).
python_candidates() {
    local p
    for p in python3.12 python3.13 python3; do
        command -v "$p" 2>/dev/null || true
    done
    local roots=()
    if command -v pyenv >/dev/null 2>&1; then
        roots+=("$(pyenv root 2>/dev/null || true)")
    fi
    if [ "${roots[0]:-}" != "$HOME/.pyenv" ]; then
        roots+=("$HOME/.pyenv")
    fi
    local root
    for root in "${roots[@]}"; do
        [ -n "$root" ] || continue
        # Newest version first.
        for p in "$root"/versions/3.1[2-9]*/bin/python3; do
            if [ -x "$p" ]; then echo "$p"; fi
        done | sort -rV
    done
    if command -v uv >/dev/null 2>&1; then
        uv python find '>=3.12' 2>/dev/null || true
    fi
}

# python_works INTERPRETER VERSION_TEST: runs the interpreter for real.
python_works() {
    "$1" -c "import sys; assert $2" >/dev/null 2>&1
}

IS_312='sys.version_info[:2] == (3, 12)'
IS_312_OR_NEWER='sys.version_info >= (3, 12)'

# find_python VERSION_TEST: prints the first working candidate passing the test.
find_python() {
    local candidate
    while IFS= read -r candidate; do
        [ -n "$candidate" ] || continue
        if python_works "$candidate" "$1"; then
            echo "$candidate"
            return 0
        fi
    done < <(python_candidates)
    return 1
}

NO_PYTHON_HELP="Python 3.12+ is needed and none was found: install python3.12 (apt-get install python3.12-venv, pyenv install 3.12, or uv python install 3.12) or set PYTHON=/path/to/python3.12"

# Picks the interpreter for a new .venv. 3.12 is preferred over newer ones
# because pgserver (embedded PostgreSQL, in the dev extra) ships wheels for
# CPython 3.12 only.
choose_python() {
    if [ -n "${PYTHON:-}" ]; then
        python_works "$PYTHON" "$IS_312_OR_NEWER" || die "PYTHON=$PYTHON is not a working Python 3.12+"
        echo "$PYTHON"
        return
    fi
    find_python "$IS_312" || find_python "$IS_312_OR_NEWER" || die "$NO_PYTHON_HELP"
}

# --- Debian packages ---------------------------------------------------------
ensure_apt_packages() {
    local wanted="$APT_PACKAGES_RUN"
    if [ "$1" = test ]; then
        wanted="$wanted $APT_PACKAGES_TEST"
    fi
    if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
        say "note: not a Debian/Ubuntu system, skipping apt; make sure the equivalents of these are installed: $wanted"
        return 0
    fi

    local missing=() p
    for p in $wanted; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
            missing+=("$p")
        fi
    done
    [ ${#missing[@]} -gt 0 ] || return 0

    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            say "WARNING: missing Debian packages (no root and no password-less sudo to install them): ${missing[*]}"
            say "WARNING: install them with: sudo apt-get install ${missing[*]}"
            return 0
        fi
    fi

    say "installing Debian packages: ${missing[*]}"
    # --no-install-recommends: docker-compose would otherwise pull in a whole Docker engine.
    if ! { "${sudo[@]}" apt-get update -qq &&
           "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
               apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
        say "WARNING: could not install Debian packages: ${missing[*]} (continuing; PDFs or some tests may fail)"
    fi
}

# --- virtualenv --------------------------------------------------------------
ensure_venv() {
    if [ -x "$VENV/bin/python" ] && python_works "$VENV/bin/python" "$IS_312_OR_NEWER"; then
        return 0
    fi
    if [ -e "$VENV" ]; then
        say "$VENV is broken or older than Python 3.12: recreating it"
        rm -rf "$VENV"
    fi
    local python
    python=$(choose_python)
    say "creating $VENV with $python ($("$python" -c 'import sys; print(sys.version.split()[0])'))"
    "$python" -m venv "$VENV" || die "could not create $VENV with $python (on Debian/Ubuntu: apt-get install python3.12-venv)"
}

install_fingerprint() {
    # The install depends on these two files and on the interpreter.
    "$VENV/bin/python" -c 'import sys; print(sys.version)'
    cat pyproject.toml constraints.txt 2>/dev/null | sha256sum
}

ensure_project_installed() {
    local want
    want=$(install_fingerprint)
    if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
        return 0
    fi
    local constraint=()
    if [ -f constraints.txt ]; then
        constraint=(-c constraints.txt)
    else
        say "WARNING: constraints.txt is missing (run make lock); installing unpinned"
    fi
    say "installing the project and its dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q "${constraint[@]}" -e '.[dev]' ||
        die "pip install failed (see the output above)"
    echo "$want" >"$STAMP"
}

# --- npm (browser tests) -----------------------------------------------------
# axe-core, the accessibility checker the browser tests inject into pages, comes
# from the npm registry, pinned by tests/e2e/package-lock.json. Debian's npm is
# installed when the machine has none.
E2E_DIR=tests/e2e
E2E_STAMP=$E2E_DIR/node_modules/.install.stamp

ensure_node_packages() {
    local want
    want=$(sha256sum "$E2E_DIR/package-lock.json" | cut -d' ' -f1)
    if [ -f "$E2E_STAMP" ] && [ "$(cat "$E2E_STAMP")" = "$want" ]; then
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        APT_PACKAGES_RUN="npm" APT_PACKAGES_TEST="" ensure_apt_packages run
        command -v npm >/dev/null 2>&1 || die "npm is needed for the browser tests' axe-core and could not be installed (apt-get install npm)"
    fi
    say "installing axe-core for the browser tests (npm ci in $E2E_DIR)"
    npm ci --prefix "$E2E_DIR" --no-audit --no-fund --loglevel=error >/dev/null ||
        die "npm ci in $E2E_DIR failed (see the output above)"
    echo "$want" >"$E2E_STAMP"
}

# --- lock --------------------------------------------------------------------
# Resolves runtime + dev + local extras on Python 3.12 in a throw-away venv and
# writes every installed distribution, pinned, to constraints.txt.
make_lock() {
    local python
    if [ -n "${PYTHON:-}" ]; then
        python_works "$PYTHON" "$IS_312" || die "PYTHON=$PYTHON is not a working Python 3.12 (the lock is resolved on 3.12)"
        python=$PYTHON
    else
        python=$(find_python "$IS_312") || die "make lock needs Python 3.12 (the lock is resolved on 3.12); set PYTHON=/path/to/python3.12"
    fi
    LOCK_TMP=$(mktemp -d)
    trap 'rm -rf "$LOCK_TMP"' EXIT
    local tmp=$LOCK_TMP

    say "resolving the lock with $python in a temporary venv"
    "$python" -m venv "$tmp/venv"
    "$tmp/venv/bin/python" -m pip install -q --upgrade pip
    # Editable so that --exclude-editable leaves the project itself out.
    "$tmp/venv/bin/python" -m pip install -q -e '.[dev]' || die "pip install failed (see the output above)"
    {
        echo "# Pinned versions of every dependency (runtime + dev + local), resolved on"
        echo "# Python $("$tmp/venv/bin/python" -c 'import sys; print(sys.version.split()[0])'). Generated by \`make lock\`: do not edit by hand."
        echo "# Used as: pip install -c constraints.txt -e '.[dev]'"
        "$tmp/venv/bin/python" -m pip freeze --exclude-editable | grep -v -i '^retainers[ =@]'
    } >"$tmp/constraints.txt"
    mv "$tmp/constraints.txt" constraints.txt
    say "wrote constraints.txt ($(grep -vc '^#' constraints.txt) packages)"
    check_lock_on_newer_python "$tmp"
}

# The lock must also install on Python 3.13+. pgserver is left out of this
# check: it has wheels for CPython 3.12 only (see the note in choose_python).
check_lock_on_newer_python() {
    local newer tmp=$1
    newer=$(find_python 'sys.version_info >= (3, 13)') || {
        say "note: no Python 3.13+ found, skipped checking the lock on it"
        return 0
    }
    say "checking that the lock installs on $("$newer" -c 'import sys; print(sys.version.split()[0])') (pip install --dry-run)"
    "$newer" -m venv "$tmp/venv-newer"
    "$tmp/venv-newer/bin/python" -m pip install -q --upgrade pip
    grep -v -i '^pgserver==' constraints.txt >"$tmp/requirements-newer.txt"
    if "$tmp/venv-newer/bin/python" -m pip install -q --dry-run -r "$tmp/requirements-newer.txt"; then
        say "the lock installs on Python 3.13+ (apart from pgserver)"
    else
        say "WARNING: the lock does not install on $newer (see above)"
    fi
}

# --- main --------------------------------------------------------------------
mode=${1:-run}
case "$mode" in
    run | test)
        ensure_apt_packages "$mode"
        ensure_venv
        ensure_project_installed
        if [ "$mode" = test ]; then
            ensure_node_packages
        fi
        ;;
    lock)
        make_lock
        ;;
    *)
        die "unknown mode '$mode' (expected run, test or lock)"
        ;;
esac
