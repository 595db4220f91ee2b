#!/usr/bin/env bash
# The whole test suite: workspace tests (the store on SQLite and PostgreSQL, the model's
# round trips and SDK cross-check), then the conformance files whose capability vireo claims.
# Installs what it needs (PostgreSQL, the SDK's venv) itself.
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
target="${CARGO_TARGET_DIR:-$root/target}"
conformance="$root/../shared/conformance"

# The official SDK in a venv: the conformance suite and the model's cross-check share it.
export VIREO_CONFORMANCE_VENV="$target/conformance-venv"
if [ ! -x "$VIREO_CONFORMANCE_VENV/bin/python" ] || ! "$VIREO_CONFORMANCE_VENV/bin/python" -c 'import ovirtsdk4' 2>/dev/null; then
  if [ ! -e /usr/include/libxml2/libxml/parser.h ] || [ ! -e /usr/include/x86_64-linux-gnu/curl/curl.h ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libxml2-dev libcurl4-openssl-dev libssl-dev) >/dev/null
  fi
  python3 -m venv "$VIREO_CONFORMANCE_VENV"
  "$VIREO_CONFORMANCE_VENV/bin/pip" install -q --disable-pip-version-check -r "$conformance/requirements.txt"
fi
export VIREO_SDK_PYTHON="$VIREO_CONFORMANCE_VENV/bin/python"

# QEMU and a tiny guest (Debian's kernel and busybox) for the agent's hypervisor tests.
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
# listed on its own: installing Debian's qemu-system-x86 can replace a backported qemu-img
command -v qemu-img >/dev/null || need+=(qemu-utils)
[ -x /bin/busybox ] || need+=(busybox-static)
ls /boot/vmlinuz-* >/dev/null 2>&1 || need+=(linux-image-amd64)
if [ ${#need[@]} -gt 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") >/dev/null
fi
command -v qemu-img >/dev/null || (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-utils >/dev/null)

# A PostgreSQL server on loopback for the store's suite.
set -a
eval "$(bash crates/vireo-store/tests/pg-server.sh start)"
set +a
trap 'bash crates/vireo-store/tests/pg-server.sh stop "$VIREO_PG_DIR" >/dev/null 2>&1 || true' EXIT

cargo test --workspace 2>&1

# The conformance suite drives the debug build the tests above already compiled: a release
# build of the generated model costs about ten minutes on two cores and changes no answer.
cargo build --bin vireo
# requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override a session's own `verify` (the
# engine's CA in the suite); the machine-wide bundle has no business in these tests.
env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE VIREO_BIN="$target/debug/vireo" \
  "$conformance/run.sh" test_entry.py test_inventory.py test_quickstart.py test_kvm.py

# Image transfer with the ovirt-imageio client (tests/imageio): upload, download, compare.
VIREO_BIN="$target/debug/vireo" tests/imageio/run.sh
