"""scripts/demo --gates 3: a ticket admitted at one lane is refused at the next."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_three_lanes_share_one_broker(tmp_path):
    script = "a MESH-0001\nb MESH-0001\na MESH-0002\nc MESH-0002\nb out MESH-0002\n" \
             "c MESH-0002\n"
    out = subprocess.run(
        [sys.executable, "-m", "turnstiled.demo_mesh", "--gates", "3",
         "--data-dir", str(tmp_path)], input=script, capture_output=True, text=True,
        timeout=180, env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock"}, cwd=ROOT, check=True)
    lines = [x for x in out.stdout.splitlines() if x.startswith("lane ")]
    assert "GRANT granted" in lines[0] and "all lanes know" in lines[0]
    assert "DENY  already_used" in lines[1]
    assert "DENY  already_inside" in lines[3]
    assert "GRANT exit" in lines[4]
    assert "GRANT granted: re-entry" in lines[5]


def test_sigterm_stops_the_lanes_and_removes_the_temporary_directory():
    """As a closed terminal (SIGHUP) or kill does: nothing of the demo is left behind."""
    # a short TMPDIR: the lanes' control sockets live in it (AF_UNIX paths are short)
    tmp = Path(tempfile.mkdtemp(prefix="ts-mesh-"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "turnstiled.demo_mesh", "--gates", "2"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "TMPDIR": str(tmp)}, cwd=ROOT,
        start_new_session=True)  # a failed test kills its mosquitto too
    try:
        banner = proc.stdout.readline()  # printed once every lane is on the broker
        assert banner.startswith("venue mesh demo:"), proc.stderr.read()
        assert [d.name[:21] for d in tmp.iterdir()] == ["turnstiled-demo-mesh-"]
        technician = next(ln for ln in iter(proc.stdout.readline, "")
                          if ln.startswith("technician:"))
        assert Path(technician.split()[1]).is_file()  # the venv's turnstilectl, by its path
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0, proc.stderr.read()
        assert list(tmp.iterdir()) == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
