#!/bin/sh
# In an image build stage: /opt/tlsdiag, a virtualenv with tlsdiag and its dependencies.
#   install-venv.sh SET         SET: sensor (no analyzer package) | analyzer (everything)
# Installs the wheels docker/build-local built on the host (/host/wheels/SET and
# /host/wheels/deps, pip's own wheel among them: no package index is needed and the image keeps
# no pip).  Without them (Docker elsewhere, a fresh clone) it builds the wheel here from /src
# with the package index, after installing a compiler and the Python headers.
set -eu
set_="${1:?usage: install-venv.sh sensor|analyzer}"
case "$set_" in
    sensor) export TLSDIAG_PACKAGES=sensor ;;
    analyzer) export TLSDIAG_PACKAGES=all ;;
    *) echo "install-venv.sh: unknown set '$set_'" >&2; exit 2 ;;
esac
unset TLSDIAG_NO_EXTENSIONS
W=/host/wheels
if ! ls "$W/$set_"/tlsdiag-*.whl >/dev/null 2>&1; then
    echo "install-venv.sh: no host-built wheels (docker/host/wheels/$set_): building from the sources with the package index"
    pkgs="gcc libc6-dev"
    python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
        || pkgs="$pkgs python3-dev"
    python3 -m pip --version >/dev/null 2>&1 || pkgs="$pkgs python3-pip"
    apt-get update
    apt-get install -y --no-install-recommends $pkgs
    W=/tmp/wheels
    mkdir -p "$W/$set_" "$W/deps"
    python3 -m pip wheel --no-cache-dir --wheel-dir "$W/deps" /src pip
    mv "$W/deps"/tlsdiag-*.whl "$W/$set_/"
fi
python3 -m venv --without-pip /opt/tlsdiag
pip_whl="$(ls "$W/deps"/pip-*.whl | sort -V | tail -n 1)"
/opt/tlsdiag/bin/python "$pip_whl/pip" install --no-index --no-cache-dir \
    --disable-pip-version-check --find-links "$W/$set_" --find-links "$W/deps" tlsdiag
# the sensor image must not ship the analyzer (tests/test_containers.py checks the image too)
if [ "$set_" = sensor ] && (cd / && /opt/tlsdiag/bin/python -c 'import analyzer' 2>/dev/null); then
    echo "install-venv.sh: the sensor venv has an analyzer package" >&2
    exit 1
fi
/opt/tlsdiag/bin/tlsdiag --version
