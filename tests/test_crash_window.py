"""The crash window: journal committed, process killed before the relay moved.

A real daemon process runs on mock pins whose relay pin cuts the power
(SIGKILL to the process) at the moment it is driven to "unlock", that is
after the journal's commit and before the arm could turn. The next start
settles the row by the documented rule (outcome ``unknown``, usage kept),
and ``turnstilectl scans`` shows it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

from tests.conftest import make_config
from turnstiled import cli
from turnstiled.cache import Cache
from turnstiled.daemon import Daemon
from turnstiled.journal import Journal
from turnstiled.rules import Ticket

CHILD = textwrap.dedent("""
    import os, signal, sys, time
    from gpiozero.pins.mock import MockFactory, MockPin
    from turnstiled import config
    from turnstiled.daemon import Daemon

    class PowerCutRelay(MockPin):
        # The relay's pin: driving it to "unlock" kills the process first.
        def _change_state(self, value):
            if self.info.name == "GPIO17" and value:
                os.kill(os.getpid(), signal.SIGKILL)
            return super()._change_state(value)

    daemon = Daemon(config.load(sys.argv[1]), MockFactory(pin_class=PowerCutRelay))
    daemon.start()
    daemon.submit(b"CRASH-1")
    time.sleep(60)
    sys.exit(3)  # never reached: the relay killed the process
""")


def test_kill_between_journal_and_relay_is_settled_at_next_start(tmp_path, pins, capsys):
    cfg = make_config(tmp_path)
    conf = tmp_path / "turnstiled.toml"
    conf.write_text(f'[paths]\ndata_dir = "{tmp_path}/data"\n'
                    f'control_socket = "{tmp_path}/control.sock"\n')
    cache = Cache(cfg.paths.cache_db)
    cache.upsert([Ticket("local", "CRASH-1")])
    cache.close()
    env = {**os.environ}
    env.pop("NOTIFY_SOCKET", None)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(conf)], env=env, timeout=60,
                          check=False, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr

    j = Journal(cfg.paths.journal_db, readonly=True)
    row = j.recent(1)[0]
    assert (row["barcode"], row["granted"], row["outcome"]) == ("CRASH-1", 1, "pending")
    assert j.usage("local", "CRASH-1").entries == 1  # the commit happened
    j.close()

    daemon = Daemon(cfg, pins)
    daemon.start()
    daemon.stop()
    j = Journal(cfg.paths.journal_db, readonly=True)
    row = j.recent(1)[0]
    assert row["outcome"] == "unknown" and "outcome unknown" in row["detail"]
    assert j.usage("local", "CRASH-1").entries == 1  # the rule: usage kept
    assert any(e["kind"] == "settled" for e in j.events(10))
    j.close()

    assert cli.main(["--config", str(conf), "scans", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)[0]
    assert (shown["barcode"], shown["outcome"], shown["passed"]) == ("CRASH-1", "unknown", None)
    assert cli.main(["--config", str(conf), "scans"]) == 0
    assert "unknown" in capsys.readouterr().out
