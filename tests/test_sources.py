"""One barcode in two sources, and a source removed from the configuration."""

from __future__ import annotations

import json
import time

from tests.conftest import make_config
from turnstiled import cli, rules
from turnstiled.backends.vivenu import VivenuBackend, VivenuSettings
from turnstiled.cache import Cache
from turnstiled.drain import Drainer
from turnstiled.journal import Journal
from turnstiled.pipeline import ScanPipeline
from turnstiled.rules import Ticket
from turnstiled.secret import Secret
from turnstiled.sim import start_emulator

VIVENU = {"token": "t", "base_url": "http://127.0.0.1:9/api/accessusers"}
CM = {"token": "t", "base_url": "http://127.0.0.1:9/api"}


def gate(tmp_path, sources):
    cfg = make_config(tmp_path, sources=sources)
    cache = Cache(cfg.paths.cache_db)
    journal = Journal(cfg.paths.journal_db)
    return cfg, cache, journal, ScanPipeline(cfg, cache, journal)


def test_configuration_order_wins_and_local_comes_last(tmp_path):
    _cfg, cache, _journal, pipe = gate(tmp_path, {"crowdmanager": CM, "vivenu": VIVENU})
    cache.upsert([Ticket("local", "CODE1", zones=("GA",)),
                  Ticket("vivenu", "CODE1", zones=("VIP",)),
                  Ticket("crowdmanager", "CODE1", zones=("North",))])
    assert pipe.evaluate(b"CODE1").ticket.source == "crowdmanager"
    cache.upsert([Ticket("local", "CODE2"), Ticket("vivenu", "CODE2")])
    assert pipe.evaluate(b"CODE2").ticket.source == "vivenu"


def test_a_refusal_is_never_overruled_by_another_sources_valid_row(tmp_path):
    _cfg, cache, _journal, pipe = gate(tmp_path, {"vivenu": VIVENU, "crowdmanager": CM})
    for status in ("invalid", "cancelled", "used", "wrong_zone"):
        code = f"REF-{status}"
        cache.upsert([Ticket("vivenu", code), Ticket("crowdmanager", code, status=status),
                      Ticket("local", code)])
        ev = pipe.evaluate(code.encode())
        assert not ev.decision.granted and ev.ticket.source == "crowdmanager", status


def test_usage_follows_the_barcode_across_sources(tmp_path):
    _cfg, cache, _journal, pipe = gate(tmp_path, {"vivenu": VIVENU})
    cache.upsert([Ticket("local", "SWAP1")])
    assert pipe.handle(b"SWAP1", "s1", "in").evaluation.decision.granted
    # The same ticket now also arrives from a cloud, which takes precedence:
    cache.upsert([Ticket("vivenu", "SWAP1")])
    ev = pipe.evaluate(b"SWAP1")
    assert ev.ticket.source == "vivenu" and ev.decision.reason == rules.ALREADY_USED
    # ... and the local list is swapped for the cloud's entirely:
    cache.replace_source("local", [])
    assert pipe.evaluate(b"SWAP1").decision.reason == rules.ALREADY_USED
    # the other way round: a re-entry pass used under one source is inside under another
    cache.upsert([Ticket("vivenu", "PASS", entries="reentry")])
    assert pipe.handle(b"PASS", "s1", "in").evaluation.decision.granted
    cache.replace_source("vivenu", [])
    cache.upsert([Ticket("local", "PASS", entries="reentry")])
    assert pipe.evaluate(b"PASS").decision.reason == rules.ALREADY_INSIDE


def test_a_removed_source_stops_admitting_and_its_scans_wait_as_orphans(tmp_path, capsys):
    with start_emulator("vivenu", tickets=30, seed=9) as emu:
        doc = next(d for d in emu.tickets.values() if d["status"] == "VALID")
        vv = {"token": emu.credentials["token"], "base_url": emu.base_url,
              "online_check": False}
        cfg, cache, journal, pipe = gate(tmp_path, {"vivenu": vv})
        backend = VivenuBackend(VivenuSettings(token=Secret(vv["token"]),
                                               base_url=emu.base_url))
        pipe.uploaders = {"vivenu": backend}
        cache.upsert([Ticket("vivenu", doc["barcode"], event=doc["eventId"])])
        out = pipe.handle(doc["barcode"].encode(), "s1", "in")
        assert out.evaluation.decision.granted
        assert journal.backlog()["vivenu"]["pending"] == 1
        # Restarted without [sources.vivenu]: its tickets stop admitting ...
        _cfg2, _cache2, _journal2, pipe2 = gate(tmp_path, {})
        assert pipe2.evaluate(doc["barcode"].encode()).decision.reason == rules.UNKNOWN
        # ... and its pending scan stays, shown as orphaned.
        conf = tmp_path / "bare.toml"
        conf.write_text(f'[paths]\ndata_dir = "{tmp_path}/data"\n'
                        f'control_socket = "{tmp_path}/ctl.sock"\n')
        cli.main(["--config", str(conf), "status", "--json"])
        status = json.loads(capsys.readouterr().out)
        assert status["backlog"]["vivenu"]["orphaned"] is True
        assert status["backlog"]["vivenu"]["pending"] == 1
        assert {s["source"]: s["admitting"] for s in status["sources"]} == {"vivenu": False}
        cli.main(["--config", str(conf), "status"])
        text = capsys.readouterr().out
        assert "ORPHANED" in text and "NOT CONFIGURED" in text
        # The source comes back: the scan is uploaded.
        drainer = Drainer(cfg.paths.journal_db, [backend])
        deadline = time.monotonic() + 30
        while journal.backlog() and time.monotonic() < deadline:
            drainer.run_once()
            time.sleep(0.05)
        assert not journal.backlog()
        assert [r["barcode"] for r in emu.records.all("scan")] == [doc["barcode"]]
        drainer.close()
        backend.close()
