"""CrowdManager at a venue: member cards, past matches."""

from __future__ import annotations

import time

from turnstiled import rules
from turnstiled.backends.crowdmanager import CrowdManagerBackend, CrowdManagerSettings, kickoff
from turnstiled.cache import Cache
from turnstiled.rules import RuleSettings, Usage, decide
from turnstiled.secret import Secret
from turnstiled.sim import start_emulator
from turnstiled.sync import Syncer


def backend(emu, **kw):
    return CrowdManagerBackend(CrowdManagerSettings(
        base_url=emu.base_url, token=Secret(emu.credentials["token"]), page_delay_s=0.0,
        timeout_s=3.0, **kw))


def test_member_cards_are_kept_whatever_history_days_says(tmp_path):
    with start_emulator("crowdmanager", tickets=40, seed=3) as emu:
        # Every member card was last updated 5 days ago; look back only one day.
        syncer = Syncer(tmp_path / "cache.db", [backend(emu, history_days=1)])
        assert syncer.sync("crowdmanager") == "full"
        cache = Cache(tmp_path / "cache.db", readonly=True)
        for m in emu.data["members"]:
            card = cache.lookup(m["card_number"])
            assert card is not None and card.entries == "reentry:14400"
        assert syncer.sync("crowdmanager") == "delta"
        assert all(cache.lookup(m["card_number"]) for m in emu.data["members"])
        cache.close()


def test_an_unused_ticket_of_a_past_match_does_not_admit(tmp_path):
    with start_emulator("crowdmanager", tickets=40, seed=3) as emu:
        syncer = Syncer(tmp_path / "cache.db", [backend(emu, match_admit_s=3 * 3600)])
        syncer.sync("crowdmanager")
        item = next(t for t in emu.data["tickets"] if t["status"] == 1)
        cache = Cache(tmp_path / "cache.db", readonly=True)
        now = time.time()
        t = cache.lookup(item["barcode"])
        assert t.valid_until == kickoff(item) + 3 * 3600
        assert decide(t, Usage(), RuleSettings(), now).granted
        past = time.strftime("%Y-%m-%d", time.localtime(now - 2 * 86400))
        time.sleep(1.1)
        emu.state.update(item["id"], match_date=past)
        assert syncer.sync("crowdmanager") == "delta"
        assert decide(cache.lookup(item["barcode"]), Usage(), RuleSettings(), now).reason == \
            rules.EXPIRED
        cache.close()


def test_kickoff_reads_local_date_and_time():
    t = kickoff({"match_date": "2026-05-01", "match_time": "19:30"})
    assert time.localtime(t)[:5] == (2026, 5, 1, 19, 30)
    assert kickoff({"match_date": "2026-05-01", "match_time": "19:30:00"}) == t
    assert kickoff({"match_time": "19:30"}) is None
    assert kickoff({"match_date": "soon"}) is None
