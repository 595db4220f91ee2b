#!/usr/bin/env bash
# Image transfer driven by the ovirt-imageio client from PyPI and ovirtsdk4: uploads and
# downloads through a real `vireo agent` (qemu-nbd data path), checked with qemu-img compare.
#
# Usage: tests/imageio/run.sh [pytest args]   (VIREO_BIN: the binary, default the debug build)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
venv="${VIREO_CONFORMANCE_VENV:-$target/conformance-venv}"
shared="$root/../shared/conformance"

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import ovirtsdk4, pytest, requests' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$shared/requirements.txt"
fi
if ! "$venv/bin/python" -c 'import ovirt_imageio.client' 2>/dev/null; then
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
fi
if [ -z "${VIREO_BIN:-}" ]; then
  (cd "$root" && cargo build --quiet --bin vireo)
  VIREO_BIN="$target/debug/vireo"
fi
# The tests run from their own folder: a relative binary path is made absolute first.
case "$VIREO_BIN" in /*) ;; */*) VIREO_BIN="$(pwd)/$VIREO_BIN" ;; esac
export VIREO_BIN VIREO_SHARED_CONFORMANCE="$shared" PYTHONDONTWRITEBYTECODE=1
cd "$here"
# requests would let the machine's CA bundle override the engine's CA.
exec env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE "$venv/bin/python" -m pytest -p no:cacheprovider -q -rfE "$here" "$@"
