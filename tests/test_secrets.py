"""No credential or full barcode in logs or error texts; the databases are not world-readable."""

from __future__ import annotations

import logging
import os
import stat

import pytest

from turnstiled.backends.base import Rejected
from turnstiled.backends.http import Http, masked_path
from turnstiled.backends.vivenu import VivenuBackend, VivenuSettings
from turnstiled.cache import Cache
from turnstiled.drain import Drainer
from turnstiled.journal import Journal, Scan
from turnstiled.rules import Decision
from turnstiled.secret import Secret
from turnstiled.sim import start_emulator


@pytest.fixture
def emu():
    e = start_emulator("vivenu", tickets=20, seed=9)
    yield e
    e.stop()


def test_no_barcode_or_token_in_log_lines_or_errors(emu, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    token = emu.credentials["token"]
    b = VivenuBackend(VivenuSettings(token=Secret(token), base_url=emu.base_url,
                                     timeout_s=2.0))
    code = next(iter(emu.tickets))
    assert b.online_check(code).ticket is not None  # the barcode is in the URL path
    unknown = "QX7PLM2WZ9KD"
    assert b.online_check(unknown).ticket is None  # a 404
    # The server echoes the path of a route it does not know: still masked.
    with pytest.raises(Rejected) as err:
        b.http.request("GET", f"nowhere/{unknown}")
    assert unknown not in str(err.value) and "…Z9KD" in str(err.value)
    # An upload whose error the drain keeps (last_error, upload_note).
    j = Journal(tmp_path / "journal.db")
    j.record(Scan(1.8e9, "g", "s", "in", code, Decision(True, "granted"), "vivenu",
                  "no-such-event"))
    emu.add_fault("POST /api/accessusers/scans/*", "html404")
    drainer = Drainer(tmp_path / "journal.db", [b])
    drainer.drain_once("vivenu")
    kept = [drainer.states["vivenu"].last_error or "",
            *(r["upload_note"] or "" for r in j.iter_all())]
    assert "misconfigured" in drainer.alarms().values()
    ours = [r.getMessage() for r in caplog.records  # the emulator is the cloud, not us
            if not r.name.startswith("turnstiled.sim")]
    assert ours
    for text in [*kept, *ours]:
        assert code not in text and unknown not in text and token not in text, text
    drainer.close()
    j.close()
    b.close()


def test_masked_path_keeps_words_and_masks_codes():
    assert masked_path("tickets/v2/64f0c2aa1b") == "tickets/v2/…aa1b"
    assert masked_path("tokens/AB12CD34") == "tokens/…CD34"
    assert masked_path("validate_ticket/") == "validate_ticket/"
    assert masked_path("events/ABCDEF/admissions") == "events/…CDEF/admissions"


def test_http_errors_name_the_request_not_the_credential(emu):
    http = Http(emu.base_url, headers={"token": "wrong-secret-token"}, vendor="vivenu")
    with pytest.raises(Exception) as err:
        http.request("GET", "events")
    assert "wrong-secret-token" not in str(err.value)
    http.close()


def test_databases_are_never_world_readable(tmp_path):
    old = os.umask(0)  # the worst umask a technician's shell could have
    try:
        j = Journal(tmp_path / "journal.db")
        j.record(Scan(1.0, "g", "s", "in", "BARCODE01", Decision(True, "granted")))
        c = Cache(tmp_path / "cache.db")
    finally:
        os.umask(old)
    for name in ("journal.db", "journal.db-wal", "cache.db"):
        mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
        assert mode & 0o137 == 0, f"{name}: {oct(mode)}"
    j.close()
    c.close()
    # A file made readable by someone else is taken back at the next start.
    os.chmod(tmp_path / "journal.db", 0o644)
    Journal(tmp_path / "journal.db").close()
    assert stat.S_IMODE((tmp_path / "journal.db").stat().st_mode) == 0o640
