"""Merging venue events is idempotent and order-independent (by nonce), in the journal."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from turnstiled.journal import Journal
from turnstiled.journal_peers import VenueEvent

# Each nonce's states as its gate would send them: unknown, then maybe passed/not.
_base = st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 5),
                  st.sampled_from(["k1", "k2"]), st.sampled_from(["in", "out"]),
                  st.sampled_from([None, True, False]),
                  st.sampled_from(["single", "2", "reentry"]))


def _versions(i: int, spec: tuple) -> list[VenueEvent]:
    gate, at, key, direction, final, policy = spec
    ev = VenueEvent(f"n{i}", gate, 1000.0 + at, key, direction, None, "local", policy, "z")
    if final is None:
        return [ev]
    return [ev, VenueEvent(ev.nonce, gate, ev.at, key, direction, final, "local", policy, "z")]


def _state(j: Journal) -> tuple:
    return (sorted(j.conn.execute("SELECT nonce, passed FROM mesh_events")),
            j.occupancy(),
            sorted(j.conn.execute("SELECT nonce, with_nonce FROM mesh_conflicts")))


@settings(max_examples=60, deadline=None)
@given(specs=st.lists(_base, min_size=1, max_size=8), data=st.data())
def test_any_order_and_duplicates_give_the_same_journal(tmp_path_factory, specs, data):
    msgs = list(itertools.chain.from_iterable(_versions(i, s) for i, s in enumerate(specs)))
    shuffled = data.draw(st.permutations(msgs + data.draw(
        st.lists(st.sampled_from(msgs), max_size=6))))
    cut = data.draw(st.integers(0, len(shuffled)))
    d = tmp_path_factory.mktemp("m")
    one, two = Journal(d / "one.db"), Journal(d / "two.db")
    try:
        one.mesh_merge(msgs)
        two.mesh_merge(shuffled[:cut])
        two.mesh_merge(shuffled[cut:])
        assert _state(one) == _state(two)
    finally:
        one.close()
        two.close()


def test_two_gates_admitting_one_single_ticket_is_one_conflict(tmp_path):
    j = Journal(tmp_path / "j.db")
    a = VenueEvent("na", "a", 10.0, "k", "in", None, "local", "single", "z")
    b = VenueEvent("nb", "b", 11.0, "k", "in", None, "local", "single", "z")
    assert j.mesh_merge([a]).conflicts == ()
    fresh = j.mesh_merge([b]).conflicts
    assert [(c["gate_id"], c["with_gate"]) for c in fresh] == [("b", "a")]
    assert j.mesh_merge([b, a]).conflicts == ()  # known already: reported once
    # b's admission annulled (the arm did not turn): no conflict any more
    j.mesh_merge([VenueEvent("nb", "b", 11.0, "k", "in", False, "local", "single", "z")])
    assert j.mesh_conflicts() == []
    assert j.occupancy() == {"z": 1}
    j.close()


def test_prune_forgets_old_events_in_batches_and_keeps_occupancy(tmp_path):
    j = Journal(tmp_path / "j.db")
    old = [VenueEvent(f"o{i}", "a", 10.0 + i, f"k{i}", "in", None, "local", "single", "z")
           for i in range(7)]
    j.mesh_merge(old, now=100.0)
    j.mesh_merge([VenueEvent("new", "a", 500.0, "k", "in", None, "local", "single", "z")],
                 now=500.0)
    assert j.prune_mesh(older_than=200.0, batch=3) == 7
    assert [n for (n,) in j.conn.execute("SELECT nonce FROM mesh_events")] == ["new"]
    assert j.occupancy() == {"z": 8}  # counts stay
    j.close()
