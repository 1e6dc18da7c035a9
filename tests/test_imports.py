"""What the gate's two processes import: each imported module stays in memory for good."""

from __future__ import annotations

import json
import subprocess
import sys

# What the daemon and the cloud process import at start (see cloud._child).
DAEMON = "import turnstiled.service"
CLOUD = ("import turnstiled.cloud; from turnstiled import logs; "
         "from turnstiled.backends import make_backends; "
         "from turnstiled.drain import Drainer; from turnstiled.sync import Syncer")
NEVER = {"click", "pygments", "sqlite_utils", "multiprocessing", "rich"}


def imported(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}; import sys, json; "
                          "print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return {m.split(".")[0] for m in json.loads(out.stdout)}


def test_daemon_imports_no_cli_no_optional_parts():
    mods = imported(DAEMON)
    assert not mods & NEVER
    # The mesh and metrics are imported only where configured.
    assert not mods & {"paho", "prometheus_client"}
    assert "httpx" in mods  # online checks run in the daemon


def test_cloud_process_imports_none_of_the_daemons_parts():
    mods = imported(CLOUD)
    assert not mods & NEVER
    assert not mods & {"gpiozero", "paho", "prometheus_client", "serial", "evdev"}
    assert {"httpx", "msgspec", "sqlite3"} <= mods


def test_httpx_without_its_command_line_client_still_works():
    out = subprocess.run([sys.executable, "-c", "import turnstiled, httpx; "
                          "print(httpx.Request('GET', 'http://x/').url)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "http://x/"
