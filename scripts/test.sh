#!/usr/bin/env bash
# Runs every test of the workspace against real parts: Mosquitto, PostgreSQL,
# real processes, the real Docker Engine. Installs what is missing (Debian, as root) first.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v git >/dev/null 2>&1 || need+=(git)
command -v python3 >/dev/null 2>&1 || need+=(python3)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
[ -x /usr/sbin/haproxy ] || need+=(haproxy)
[ -x /usr/sbin/nginx ] || need+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || need+=(libnginx-mod-stream)
# Debian images for the docker driver (`stratos image build`); the Docker Engine itself
# is the machine's (CI fails the Docker tests without one).
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
# A second Docker Engine (its own dockerd and bridge) stands for a second host.
command -v ip >/dev/null 2>&1 || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi

if [ -z "${STRATOS_TEST_POSTGRES:-}" ]; then
    eval "$(scripts/postgres-setup.sh | tail -n 1)"
fi
export STRATOS_TEST_POSTGRES

# As root, members run as users of their own (see README, Security / Members) and
# must reach the stratos binary the tests start: a checkout under a private
# directory (/root is 0700) cannot be reached by them, so build outside it then.
if [ "$(id -u)" = 0 ] && [ -z "${CARGO_TARGET_DIR:-}" ] \
    && ! setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$PWD" 2>/dev/null; then
    export CARGO_TARGET_DIR=/var/tmp/stratos-test-target
    echo "building in $CARGO_TARGET_DIR: members running as other users cannot reach $PWD" >&2
fi

# Libraries, binaries and tests; benchmarks are run on their own (`cargo bench`).
cargo test --workspace --lib --bins --tests "$@"
