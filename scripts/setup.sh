#!/bin/sh
# Install everything pycompose and its tests need on a fresh Debian/Ubuntu machine (as root):
# OS packages (OCI runtimes, nftables, test images and registry), then a virtualenv in .venv.
set -eu
cd "$(dirname "$0")/.."

OS_PACKAGES="python3 python3-venv python3-dev gcc runc crun conmon tini nftables iproute2 \
  busybox-static docker-registry skopeo mmdebstrap openssl apache2-utils docker.io"

missing=""
for pkg in $OS_PACKAGES; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  echo "setup: installing OS packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's docker.io may try to start dockerd; we never need it running.
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# Python 3.11 or newer: the first suitable interpreter on PATH, else Debian's.
PYTHON=""
for candidate in python3.13 python3.12 python3.11 python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    PYTHON=$(command -v "$candidate"); break
  fi
done
[ -n "$PYTHON" ] || { echo "setup: need Python 3.11 or newer" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# compat mode: a plain .pth entry, no import-hook finder to pay for at every CLI start
.venv/bin/python -m pip install -q -e '.[test]' --config-settings editable_mode=compat
echo "setup: ready ($(.venv/bin/python --version), $(.venv/bin/pycompose --version))"
