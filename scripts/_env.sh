# shellcheck shell=bash
# Shared by scripts/demo, scripts/test and scripts/bench: make a fresh Debian
# machine able to run turnstiled from this checkout. Idempotent and quiet when
# everything is already there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TURNSTILED_VENV:-$ROOT/.venv}"

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
command -v gcc >/dev/null || need_apt+=(gcc)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
pkg-config --exists libsystemd 2>/dev/null || need_apt+=(libsystemd-dev)
[ -f /usr/include/linux/input.h ] || need_apt+=(linux-libc-dev)
# Tools the tests run: shellcheck (scripts), systemd-analyze (the unit), strace
# (which programs scripts/provision starts, with which arguments).
command -v shellcheck >/dev/null || need_apt+=(shellcheck)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)  # tests/test_unit.py
# the venue mesh's broker: the mesh tests, the bench and `scripts/demo --gates N` run one
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
# promtool validates monitoring/turnstiled-alerts.yml (tests/test_monitoring.py); Debian
# ships it only in the server package (~19 MB download): worth it to test the rules for real
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v strace >/dev/null || need_apt+=(strace)
python3 -c 'import sysconfig,os,sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"],"Python.h")))' 2>/dev/null || need_apt+=(python3-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "turnstiled: installing system packages: ${need_apt[*]}" >&2
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

stamp="$VENV/.turnstiled-installed"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    echo "turnstiled: installing Python packages into $VENV" >&2
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install -q -e "${ROOT}[test]"
    touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
