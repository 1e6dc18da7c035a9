"""Chapter-event scenarios -> gate decision -> upstream ``times_used`` before/after.

Each row scans through the real pipeline, journal and drain against the
emulator and reads ``times_used`` from the emulator before the scan and
after the drain settled. ``scripts/test -q -s tests/test_chapterevents_table.py``
prints the table.
"""

from __future__ import annotations

from tests.conftest import wait_until
from tests.test_chapterevents import ROUTE, Gate, backend, fresh, used
from turnstiled.secret import Secret
from turnstiled.sim import start_emulator


def test_closing_table(tmp_path):
    rows: list[tuple[str, str, str, str, str]] = []
    with start_emulator("chapterevents", tickets=60, seed=11) as ce:
        gates: list[Gate] = []

        def gate(**kw):
            gate_kw = kw.pop("gate", {})
            gates.append(Gate(tmp_path / str(len(gates)), backend(ce, **kw), **gate_kw))
            return gates[-1]

        def run(what, g, code, direction="in", expect_upload=None):
            before = used(ce, code) if code in ce.state else None
            o = g.scan(code, direction)
            for _ in range(5):  # settle the journal (a lost reply is retried)
                g.drainer.states["chapterevents"].next_due = 0
                g.drain()
            row = g.rows()[-1]
            d = o.evaluation.decision
            after = used(ce, code) if code in ce.state else None
            upload = row["upload"] + (f" ({row['upload_note']})" if row["upload_note"]
                                      and row["upload"] == "rejected" else "")
            rows.append((what, f"{'GRANT' if d.granted else 'DENY'} {d.reason}",
                         "-" if before is None else str(before),
                         "-" if after is None else str(after), upload))
            if expect_upload:
                assert row["upload"] == expect_upload
            return d

        day1 = gate(gate={"events": ["Fysikalen Dag 1"]})
        paid = fresh(ce)
        run("PAID ticket, first scan", day1, paid)
        run("same ticket again (still inside)", day1, paid)
        run("exit scan", day1, paid, "out")
        run("re-entry after the exit", day1, paid)
        reserved = fresh(ce, "RESERVED")
        run("RESERVED (unpaid) ticket", day1, reserved)
        ce.state.update(reserved, status="PAID")
        run("same ticket after paying", day1, reserved)
        run("Day 2 ticket at a Day 1 gate", day1, fresh(ce, event="Fysikalen Dag 2"))
        elsewhere = fresh(ce)
        ce.admin_tickets({"action": "use", "external_id": elsewhere})
        run("ticket already used at another door", day1, elsewhere)
        run("exit scan of an unused ticket", day1, fresh(ce),
            "out")
        run("code unknown upstream", day1, "ZZZZZZ" if "ZZZZZZ" not in ce.state else "ZZZZZY")

        slow = gate(online_deadline_s=0.2)
        code = fresh(ce)
        ce.add_fault(ROUTE, "latency:1500x1")
        run("server slower than the deadline (policy deny)", slow, code)
        assert wait_until(lambda: ce.records.all("validation", external_id=code), 15)
        rows[-1] = (*rows[-1][:3], str(used(ce, code)), rows[-1][4])  # after the late request

        wrong_pw = gate(password=Secret("guess"), offline_policy="admit-and-journal")
        run("wrong password, admit-and-journal", wrong_pw, fresh(ce))
        wrong_url = gate(base_url=ce.base_url + "/tickets", offline_policy="admit-and-journal")
        run("wrong base URL (HTML 404), admit-and-journal", wrong_url, fresh(ce))

        offline = gate(offline_policy="admit-and-journal", online_deadline_s=0.3)
        ok, taken, unpaid = fresh(ce), fresh(ce), fresh(ce, "RESERVED")
        ce.add_fault(ROUTE, "503")
        offline.drainer.states["chapterevents"].next_due = 1e12  # server down: no drain yet
        scans = [(what, c, offline.scan(c)) for what, c in (
            ("server down (503), admit-and-journal", ok),
            ("... same code again while down", ok),
            ("... a ticket another door uses meanwhile", taken),
            ("... an unpaid ticket", unpaid))]
        ce.admin_tickets({"action": "use", "external_id": taken})
        befores = {c: used(ce, c) for c in (ok, taken, unpaid)}
        befores[taken] -= 1  # it was 0 when scanned; the other door's use came later
        ce.clear_faults()
        for _ in range(3):
            offline.drainer.states["chapterevents"].next_due = 0
            offline.drain()
        by_id = {r["id"]: r for r in offline.rows()}
        for (what, c, o), row in zip(scans, sorted(by_id.values(), key=lambda r: r["id"]),
                                     strict=True):
            d = o.evaluation.decision
            upload = row["upload"] + (f" ({row['upload_note']})" if row["upload"] == "rejected"
                                      else "")
            rows.append((what, f"{'GRANT' if d.granted else 'DENY'} {d.reason}",
                         str(befores[c]), str(used(ce, c)), upload))

        lost = gate()
        code = fresh(ce)
        ce.add_fault(ROUTE, "reset!x1@2")  # check at the scan, check in the drain, then the use
        run("the use's reply is lost, the drain retries", lost, code, expect_upload="confirmed")

        for g in gates:
            g.close()

    print("\n| scenario | gate decision | times_used before | after | journal upload |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    table = {r[0]: r for r in rows}
    expect = {
        "PAID ticket, first scan": ("GRANT granted", "0", "1"),
        "same ticket again (still inside)": ("DENY already_inside", "1", "1"),
        "exit scan": ("GRANT exit", "1", "1"),
        "re-entry after the exit": ("GRANT granted", "1", "1"),
        "RESERVED (unpaid) ticket": ("DENY invalid", "0", "0"),
        "same ticket after paying": ("GRANT granted", "0", "1"),
        "Day 2 ticket at a Day 1 gate": ("DENY wrong_event", "0", "0"),
        "ticket already used at another door": ("DENY already_used", "1", "1"),
        "exit scan of an unused ticket": ("GRANT exit", "0", "0"),
        "server slower than the deadline (policy deny)": ("DENY unknown", "0", "0"),
        "wrong password, admit-and-journal": ("DENY source_error", "0", "0"),
        "wrong base URL (HTML 404), admit-and-journal": ("DENY source_error", "0", "0"),
        "server down (503), admit-and-journal": ("GRANT granted", "0", "1"),
        "... same code again while down": ("DENY already_inside", "0", "1"),
        "... a ticket another door uses meanwhile": ("GRANT granted", "0", "1"),
        "... an unpaid ticket": ("GRANT granted", "0", "0"),
        "the use's reply is lost, the drain retries": ("GRANT granted", "0", "1"),
    }
    for what, (decision, before, after) in expect.items():
        assert table[what][1:4] == (decision, before, after), table[what]
    assert "conflict: already used" in table["... a ticket another door uses meanwhile"][4]
    assert "conflict: payment status RESERVED" in table["... an unpaid ticket"][4]
