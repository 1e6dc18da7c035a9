"""The demo as a person meets it: scanners a shell can write to, an exit, a clean exit."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ENV = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock"}
ROOT = Path(__file__).resolve().parent.parent


def beside_a_checkout(tmp_path: Path) -> Path:
    """A working directory like ~ with the checkout in ~/turnstiled. `python -m`
    looks there first: turnstiled/ would be a namespace package, and the
    checkout's config/ directory would shadow turnstiled.config."""
    (tmp_path / "turnstiled").symlink_to(ROOT)
    return tmp_path


class Lines:
    """A process's output lines, read in a thread so a wait can time out."""

    def __init__(self, stream) -> None:
        self.q: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.q.put(line)
        self.q.put(None)

    def until(self, pattern: str, timeout: float = 120) -> re.Match:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if m := re.search(pattern, line):
                return m
        raise AssertionError(f"no line matching {pattern!r} in {self.seen!r}")


def decisions(script: str, *args: str) -> list[str]:
    """The demo's decision lines for *script* piped to it (stdin not a terminal)."""
    proc = subprocess.run([sys.executable, "-m", "turnstiled.demo", *args], input=script,
                          capture_output=True, text=True, timeout=120, check=False, env=ENV)
    assert proc.returncode == 0, proc.stderr
    return [ln for ln in proc.stdout.splitlines() if ln[:5] in ("GRANT", "DENY ", "-----")]


def test_demo_runs_from_piped_input():
    """scripts/demo's program, scripted: vivenu emulator, sync, pty scanner, decisions."""
    lines = decisions("DEMO-0001\nDEMO-0001\nDEMO-0004\nNOPE\n", "--tickets", "300")
    assert lines == [
        "GRANT DEMO-0001  granted: first entry",
        "----- DEMO-0001  repeat within the debounce window: ignored",
        "DENY  DEMO-0004  invalid: ticket status invalid",
        "DENY  NOPE  unknown: ticket not in cache",
    ]


def test_reentry_through_the_exit_scanner():
    lines = decisions("DEMO-0002\nDEMO-0002\nout DEMO-0002\nDEMO-0002\nout NOPE-1\n",
                      "--tickets", "50", "--debounce", "0")
    assert lines == [
        "GRANT DEMO-0002  granted: first entry",
        "DENY  DEMO-0002  already_inside: entered and has not left",
        "GRANT DEMO-0002  exit: leaving",
        "GRANT DEMO-0002  granted: re-entry",
        "DENY  NOPE-1  unknown: ticket not in cache",
    ]


def test_scripts_demo_runs_from_the_checkouts_parent(tmp_path):
    proc = subprocess.run([str(ROOT / "scripts" / "demo"), "--tickets", "50"],
                          input="DEMO-0001\n", capture_output=True, text=True, timeout=300,
                          check=False, env=ENV, cwd=beside_a_checkout(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "GRANT DEMO-0001  granted: first entry" in proc.stdout.splitlines()


def test_the_printed_pipe_and_turnstilectl_work_from_another_shell(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "turnstiled.demo", "--tickets", "50"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    out = Lines(proc.stdout)
    try:
        hint = out.until(r"echo (DEMO-0001) > (\S+/in)\b")
        pipe = Path(hint.group(2))
        workdir = pipe.parent
        ctl = out.until(r"(\S+/turnstilectl) status").group(1)
        # exactly what the hint says, in a shell as a person would type it
        subprocess.run(f"echo {hint.group(1)} > {pipe}", shell=True, check=True, timeout=30)
        out.until(r"^GRANT DEMO-0001  granted")
        subprocess.run(f"printf 'DEMO-0004\\r\\n' > {workdir}/out", shell=True, check=True,
                       timeout=30)
        out.until(r"^GRANT DEMO-0004  exit")  # an exit scanner lets anyone out
        # another shell starts in ~, beside the checkout
        status = subprocess.run([ctl, "status"], capture_output=True, text=True,
                                timeout=60, check=False, cwd=beside_a_checkout(tmp_path))
        assert status.returncode == 0, status.stderr
        assert "entry: connected" in status.stdout and "exit: connected" in status.stdout
        scans = subprocess.run([ctl, "scans", "--json"], capture_output=True,
                               text=True, timeout=60, check=True)
        assert '"scanner": "exit"' in scans.stdout
        proc.stdin.close()
        assert proc.wait(60) == 0, proc.stderr.read()
        assert not workdir.exists()  # the temporary directory is gone with the demo
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_help_names_the_mesh_demo_and_gates_runs_it():
    """`scripts/demo --help` tells of --gates; the turnstiled-demo entry point takes it too."""
    out = subprocess.run([sys.executable, "-m", "turnstiled.demo", "--help"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert "--gates N" in out
    bad = subprocess.run([sys.executable, "-m", "turnstiled.demo", "--gates", "1"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "--gates must be 2..26" in bad.stderr
