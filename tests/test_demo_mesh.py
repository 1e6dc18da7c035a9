"""scripts/demo --gates 3: a ticket admitted at one lane is refused at the next."""

from __future__ import annotations

import os
import subprocess
import sys
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
