"""Unit tests of netgear.liveness: the pure per-server liveness state machine.

No sockets, no threads, no real clock: every time is a plain float.
"""

from __future__ import annotations

import copy
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netgear.errors import ConfigError
from netgear.liveness import (
    EVENT_KINDS,
    REASONS,
    TRANSITIONS,
    Event,
    Liveness,
    Obs,
    ServerStatus,
    State,
    Transition,
)

pytestmark = pytest.mark.timeout(60)

A = 5555
B = 5556
C = 5557


def ev(
    kind: str,
    port: int | None,
    server_id: str | None,
    at: float,
    reason: str | None = None,
    other_id: str | None = None,
) -> Event:
    """Shorthand for an expected Event."""
    return Event(kind, port, server_id, at, reason, other_id)


def make(
    ports: tuple[int, ...] = (A,),
    *,
    timeout: float = 5.0,
    grace: float | None = None,
    idle: float | None = None,
    now: float = 0.0,
) -> Liveness:
    """A Liveness with test-friendly defaults (no grace, no idle timeout)."""
    return Liveness(ports, timeout=timeout, startup_grace=grace, idle_timeout=idle, now=now)


def alive(lv: Liveness, port: int = A, sid: str = "a", now: float = 1.0, **kw: object) -> None:
    """Make ``sid`` ALIVE (it must be unknown), checking the "joined" event."""
    assert lv.message(port, sid, now, **kw) == [ev("joined", port, sid, now)]  # type: ignore[arg-type]


def gone(lv: Liveness, port: int = A, sid: str = "a") -> None:
    """Make an unknown ``sid`` ALIVE at t=1 on conn 7, then GONE by a disconnect at t=2."""
    alive(lv, port, sid, 1.0, conn=7)
    assert lv.disconnected(port, 7, 2.0)[0] == ev("left", port, sid, 2.0, "disconnected")
    assert lv.state_of(port, sid) is State.GONE


def closed(lv: Liveness, port: int = A, sid: str = "a") -> None:
    """Make an unknown ``sid`` ALIVE at t=1, then CLOSED by a bye at t=2."""
    alive(lv, port, sid, 1.0)
    assert lv.bye(port, sid, 2.0)[0] == ev("left", port, sid, 2.0, "closed")
    assert lv.state_of(port, sid) is State.CLOSED


def status(lv: Liveness, port: int, sid: str | None, now: float) -> ServerStatus:
    """The snapshot row of one entry."""
    rows = [r for r in lv.snapshot(now) if (r.port, r.server_id) == (port, sid)]
    assert len(rows) == 1, rows
    return rows[0]


# --------------------------------------------------------------------------- the table


def test_transition_table_is_exactly_the_documented_one() -> None:
    assert TRANSITIONS == {
        (None, Obs.MESSAGE): (State.ALIVE, "joined"),
        (None, Obs.NEW_SESSION): (State.ALIVE, "joined"),
        (State.ALIVE, Obs.MESSAGE): (State.ALIVE, None),
        (State.ALIVE, Obs.NEW_SESSION): (State.ALIVE, "restarted"),
        (State.GONE, Obs.MESSAGE): (State.ALIVE, "returned"),
        (State.GONE, Obs.NEW_SESSION): (State.ALIVE, "returned"),
        (State.CLOSED, Obs.MESSAGE): (State.ALIVE, "returned"),
        (State.CLOSED, Obs.NEW_SESSION): (State.ALIVE, "returned"),
        (None, Obs.BYE): (State.CLOSED, None),
        (State.ALIVE, Obs.BYE): (State.CLOSED, "left"),
        (State.GONE, Obs.BYE): (State.CLOSED, None),
        (State.CLOSED, Obs.BYE): (State.CLOSED, None),
        (State.ALIVE, Obs.DISCONNECT): (State.GONE, "left"),
        (State.ALIVE, Obs.TIMEOUT): (State.GONE, "left"),
        (State.EXPECTED, Obs.GRACE): (State.GONE, "left"),
    }
    assert all(isinstance(t, Transition) for t in TRANSITIONS.values())


def test_table_event_kinds_and_reasons_are_known() -> None:
    assert EVENT_KINDS == ("joined", "returned", "restarted", "left", "duplicate", "ended")
    for (_, obs), (new_state, kind) in TRANSITIONS.items():
        assert kind is None or kind in EVENT_KINDS
        if new_state in (State.GONE, State.CLOSED):
            assert obs in REASONS
    assert set(REASONS.values()) == {"closed", "disconnected", "timeout", "never_connected"}


def test_state_values_are_strings() -> None:
    assert [s.value for s in State] == ["expected", "alive", "gone", "closed"]


# ---------------------------------------------------------- one test per transition


def test_unknown_message_joins() -> None:  # (None, MESSAGE)
    lv = make((A, B))
    assert lv.state_of(A, None) is State.EXPECTED
    assert lv.message(A, "a", 1.0) == [ev("joined", A, "a", 1.0)]
    assert lv.state_of(A, "a") is State.ALIVE
    assert lv.state_of(A, None) is None  # the port-level entry disappeared
    assert lv.state_of(B, None) is State.EXPECTED
    assert lv.alive_count == 1
    row = status(lv, A, "a", 1.5)
    assert row == ServerStatus(A, "a", State.ALIVE, 1.0, 1.0, 0.5, 1, 0, None)


def test_unknown_message_with_a_session_joins() -> None:  # (None, NEW_SESSION) never
    # a first message has no previous session to differ from: plain "joined", session kept
    lv = make()
    assert lv.message(A, "a", 1.0, session=42) == [ev("joined", A, "a", 1.0)]
    assert status(lv, A, "a", 1.0).session == 42


def test_unknown_after_bye_with_new_session_returns() -> None:  # (CLOSED, *) session None
    lv = make()
    assert lv.bye(A, "a", 1.0) == [ev("ended", None, None, 1.0)]
    assert status(lv, A, "a", 1.0).session is None
    assert lv.message(A, "a", 2.0, session=3) == [ev("returned", A, "a", 2.0)]
    assert status(lv, A, "a", 2.0).session == 3


def test_alive_message_same_session_refreshes_silently() -> None:  # (ALIVE, MESSAGE)
    lv = make()
    alive(lv, now=1.0, conn=3)
    assert lv.message(A, "a", 2.0, conn=4) == []
    assert lv.message(A, "a", 3.0) == []
    assert lv.state_of(A, "a") is State.ALIVE
    assert status(lv, A, "a", 3.25) == ServerStatus(A, "a", State.ALIVE, 1.0, 3.0, 0.25, 3, 0, None)
    assert lv.next_deadline() == 8.0  # the silence restarts at every message


def test_alive_message_new_session_restarts() -> None:  # (ALIVE, NEW_SESSION)
    lv = make()
    alive(lv, now=1.0, session=1)
    assert lv.message(A, "a", 2.0, session=2) == [ev("restarted", A, "a", 2.0)]
    assert lv.state_of(A, "a") is State.ALIVE
    row = status(lv, A, "a", 2.0)
    assert (row.since, row.session, row.messages) == (1.0, 2, 2)
    # the new session is now the known one
    assert lv.message(A, "a", 3.0, session=2) == []
    assert lv.message(A, "a", 4.0, session=1) == [ev("restarted", A, "a", 4.0)]


def test_gone_message_returns() -> None:  # (GONE, MESSAGE)
    lv = make((A, B))
    gone(lv)
    assert lv.message(A, "a", 3.0) == [ev("returned", A, "a", 3.0)]
    assert lv.state_of(A, "a") is State.ALIVE
    assert status(lv, A, "a", 3.0) == ServerStatus(A, "a", State.ALIVE, 3.0, 3.0, 0.0, 2, 0, None)


def test_gone_message_new_session_returns() -> None:  # (GONE, NEW_SESSION)
    lv = make((A, B))
    gone(lv)
    assert lv.message(A, "a", 3.0, session=9) == [ev("returned", A, "a", 3.0)]
    assert status(lv, A, "a", 3.0).session == 9


def test_closed_message_returns() -> None:  # (CLOSED, MESSAGE)
    lv = make((A, B))
    closed(lv)
    assert lv.message(A, "a", 3.0) == [ev("returned", A, "a", 3.0)]
    assert lv.state_of(A, "a") is State.ALIVE
    assert status(lv, A, "a", 3.0).reason is None


def test_closed_message_new_session_returns() -> None:  # (CLOSED, NEW_SESSION)
    lv = make((A, B))
    closed(lv)
    assert lv.message(A, "a", 3.0, session=5) == [ev("returned", A, "a", 3.0)]
    assert status(lv, A, "a", 3.0).session == 5


def test_unknown_bye_records_closed_silently() -> None:  # (None, BYE)
    lv = make((A, B))
    assert lv.bye(A, "a", 1.0) == []
    assert lv.state_of(A, "a") is State.CLOSED
    assert lv.state_of(A, None) is None  # somebody was there
    assert status(lv, A, "a", 2.0) == ServerStatus(A, "a", State.CLOSED, 1.0, None, None, 0, None, "closed")


def test_alive_bye_leaves_closed() -> None:  # (ALIVE, BYE)
    lv = make((A, B))
    alive(lv, now=1.0)
    assert lv.bye(A, "a", 2.0) == [ev("left", A, "a", 2.0, "closed")]
    assert lv.state_of(A, "a") is State.CLOSED
    assert lv.alive_count == 0
    assert status(lv, A, "a", 3.0) == ServerStatus(A, "a", State.CLOSED, 2.0, 1.0, 2.0, 1, 0, "closed")


def test_gone_bye_closes_silently() -> None:  # (GONE, BYE)
    lv = make((A, B))
    gone(lv)
    assert lv.bye(A, "a", 3.0) == []
    assert lv.state_of(A, "a") is State.CLOSED
    row = status(lv, A, "a", 3.0)
    assert (row.since, row.reason) == (3.0, "closed")


def test_closed_bye_is_a_no_op() -> None:  # (CLOSED, BYE)
    lv = make((A, B))
    closed(lv)
    before = lv.snapshot(5.0)
    assert lv.bye(A, "a", 3.0) == []
    assert lv.state_of(A, "a") is State.CLOSED
    assert lv.snapshot(5.0) == before  # since stays 2.0


def test_alive_disconnect_leaves_gone() -> None:  # (ALIVE, DISCONNECT)
    lv = make((A, B))
    alive(lv, now=1.0, conn=7)
    assert lv.disconnected(A, 7, 2.0) == [ev("left", A, "a", 2.0, "disconnected")]
    assert lv.state_of(A, "a") is State.GONE
    row = status(lv, A, "a", 2.0)
    assert (row.state, row.since, row.reason, row.last_seen) == (State.GONE, 2.0, "disconnected", 1.0)


def test_alive_timeout_leaves_gone() -> None:  # (ALIVE, TIMEOUT)
    lv = make((A, B), timeout=5.0)
    alive(lv, now=1.0)
    assert lv.tick(5.9) == []
    assert lv.tick(6.0) == [ev("left", A, "a", 6.0, "timeout")]
    assert lv.state_of(A, "a") is State.GONE
    assert status(lv, A, "a", 6.0).reason == "timeout"
    assert lv.tick(100.0) == []  # GONE does not time out again


def test_expected_grace_leaves_gone() -> None:  # (EXPECTED, GRACE)
    lv = make((A, B), timeout=50.0, grace=10.0, now=100.0)
    alive(lv, B, "b", 101.0)
    assert lv.tick(109.0) == []
    assert lv.tick(110.0) == [ev("left", A, None, 110.0, "never_connected")]
    assert lv.state_of(A, None) is State.GONE
    row = status(lv, A, None, 111.0)
    assert row == ServerStatus(A, None, State.GONE, 110.0, None, None, 0, None, "never_connected")
    assert lv.tick(200.0) == [ev("left", B, "b", 200.0, "timeout"), ev("ended", None, None, 200.0)]


# ------------------------------------------------------------------------ end of stream


def test_two_ports_not_ended_while_the_other_is_expected() -> None:
    lv = make((A, B), grace=30.0)
    alive(lv, A, "a", 0.5)
    assert lv.bye(A, "a", 1.0) == [ev("left", A, "a", 1.0, "closed")]
    assert not lv.ended
    alive(lv, B, "b", 5.0)
    assert lv.state_of(B, "b") is State.ALIVE
    assert lv.bye(B, "b", 6.0) == [ev("left", B, "b", 6.0, "closed"), ev("ended", None, None, 6.0)]
    assert lv.ended


def test_no_grace_and_a_port_never_joining_never_ends() -> None:
    lv = make((A, B), grace=None)
    alive(lv, A, "a", 1.0)
    assert lv.bye(A, "a", 2.0) == [ev("left", A, "a", 2.0, "closed")]
    assert lv.next_deadline() is None
    assert lv.tick(1e9) == []
    assert not lv.ended
    assert lv.state_of(B, None) is State.EXPECTED


def test_nobody_connects_ends_exactly_at_grace() -> None:
    lv = make((A, B), grace=30.0)
    assert lv.next_deadline() == 30.0
    assert lv.tick(29.999) == []
    assert not lv.ended
    assert lv.tick(30.0) == [
        ev("left", A, None, 30.0, "never_connected"),
        ev("left", B, None, 30.0, "never_connected"),
        ev("ended", None, None, 30.0),
    ]
    assert lv.ended
    assert lv.next_deadline() is None


def test_zero_grace_expires_at_the_first_tick() -> None:
    lv = make((A,), grace=0.0, now=3.0)
    assert lv.next_deadline() == 3.0
    assert lv.tick(3.0) == [ev("left", A, None, 3.0, "never_connected"), ev("ended", None, None, 3.0)]


def test_ended_after_the_last_server_disconnects() -> None:
    lv = make((A,))
    alive(lv, A, "a", 1.0, conn=3)
    assert lv.disconnected(A, 3, 2.0) == [ev("left", A, "a", 2.0, "disconnected"), ev("ended", None, None, 2.0)]


def test_ended_after_the_last_server_times_out() -> None:
    lv = make((A,), timeout=2.0)
    alive(lv, A, "a", 1.0)
    assert lv.tick(3.0) == [ev("left", A, "a", 3.0, "timeout"), ev("ended", None, None, 3.0)]


def test_unknown_bye_on_the_only_port_ends() -> None:
    lv = make((A,))
    assert lv.bye(A, "x", 1.0) == [ev("ended", None, None, 1.0)]


def test_ended_is_latched_and_emitted_once() -> None:
    lv = make((A,))
    closed(lv)
    assert lv.ended
    assert lv.message(A, "a", 3.0, conn=1) == [ev("returned", A, "a", 3.0)]
    assert lv.ended  # stays ended although somebody is ALIVE again
    assert lv.disconnected(A, 1, 4.0) == [ev("left", A, "a", 4.0, "disconnected")]
    assert lv.message(A, "a", 5.0) == [ev("returned", A, "a", 5.0)]
    assert lv.tick(100.0) == [ev("left", A, "a", 100.0, "timeout")]
    assert lv.bye(A, "b", 101.0) == []
    assert lv.ended


def test_port_gone_by_grace_then_a_late_server_joins() -> None:
    lv = make((A, B), grace=1.0)
    alive(lv, A, "a", 0.5)
    assert lv.tick(1.0) == [ev("left", B, None, 1.0, "never_connected")]
    assert lv.message(B, "b", 2.0) == [ev("joined", B, "b", 2.0)]
    assert lv.state_of(B, None) is None
    assert [(r.port, r.server_id) for r in lv.snapshot(2.0)] == [(A, "a"), (B, "b")]
    assert lv.bye(A, "a", 3.0) == [ev("left", A, "a", 3.0, "closed")]
    assert lv.bye(B, "b", 4.0) == [ev("left", B, "b", 4.0, "closed"), ev("ended", None, None, 4.0)]


def test_a_server_on_an_unconfigured_port_is_tracked() -> None:
    lv = make((A,))
    alive(lv, C, "c", 1.0)
    assert lv.state_of(C, "c") is State.ALIVE
    assert lv.state_of(C, None) is None
    assert lv.state_of(A, None) is State.EXPECTED


# ----------------------------------------------------------------------------- deadlines


def test_timeout_deadline_is_exact_and_inclusive() -> None:
    for late in (0.0, 1e-9):
        lv = make(timeout=5.0)
        alive(lv, now=1.0)
        deadline = lv.next_deadline()
        assert deadline == 6.0
        assert lv.tick(deadline - 1e-3) == []
        assert lv.state_of(A, "a") is State.ALIVE
        assert lv.tick(deadline + late) == [
            ev("left", A, "a", deadline + late, "timeout"),
            ev("ended", None, None, deadline + late),
        ]


def test_grace_deadline_is_exact_and_inclusive() -> None:
    for late in (0.0, 1e-9):
        lv = make((A,), grace=2.5, now=10.0)
        deadline = lv.next_deadline()
        assert deadline == 12.5
        assert lv.tick(deadline - 1e-3) == []
        assert lv.tick(deadline + late)[0] == ev("left", A, None, deadline + late, "never_connected")


def test_idle_deadline_is_exact_and_inclusive() -> None:
    for late in (0.0, 1e-9):
        lv = make((A,), timeout=100.0, idle=4.0)
        alive(lv, now=1.0)
        deadline = lv.next_deadline()
        assert deadline == 5.0
        assert lv.tick(deadline - 1e-3) == []
        assert lv.tick(deadline + late) == [ev("ended", None, None, deadline + late)]
        assert lv.state_of(A, "a") is State.ALIVE  # idle ends the stream regardless of states


@settings(max_examples=300, deadline=None)
@given(
    start=st.floats(min_value=0.0, max_value=1e6, allow_nan=False),
    gap=st.floats(min_value=0.0, max_value=1e3, allow_nan=False),
    timeout=st.floats(min_value=1e-6, max_value=1e3, allow_nan=False),
)
def test_deadline_exact_for_awkward_floats(start: float, gap: float, timeout: float) -> None:
    lv = make(timeout=timeout, now=start)
    seen = start + gap
    lv.message(A, "a", seen)
    deadline = lv.next_deadline()
    assert deadline is not None
    assert deadline == seen + timeout
    before = math.nextafter(deadline, -math.inf)
    assert copy.deepcopy(lv).tick(before) == []
    assert lv.tick(deadline)[0] == ev("left", A, "a", deadline, "timeout")


def test_next_deadline_is_the_smallest_pending_one() -> None:
    lv = make((A, B, C), timeout=5.0, grace=20.0, idle=30.0)
    alive(lv, A, "a", 1.0)
    lv.message(A, "b", 2.0)  # also reports a duplicate, which does not matter here
    assert lv.next_deadline() == 6.0
    lv.message(A, "a", 4.0)
    assert lv.next_deadline() == 7.0  # "b"
    lv.bye(A, "b", 4.0)
    assert lv.next_deadline() == 9.0  # "a"
    lv.bye(A, "a", 4.5)
    assert lv.next_deadline() == 20.0  # grace of B and C
    lv.bye(B, "x", 4.5)
    lv.bye(C, "y", 4.5)
    assert lv.ended
    assert lv.next_deadline() is None  # nothing pending: idle no longer matters


def test_next_deadline_without_anything_pending_is_none() -> None:
    lv = make((A,), grace=None)
    assert lv.next_deadline() is None
    alive(lv)
    lv.hold(A, "a", True)
    assert lv.next_deadline() is None


def test_idle_deadline_when_it_is_the_earliest() -> None:
    lv = make((A,), timeout=50.0, grace=40.0, idle=3.0, now=1.0)
    assert lv.next_deadline() == 4.0
    alive(lv, now=2.0)
    assert lv.next_deadline() == 5.0


# ---------------------------------------------------------------------------------- hold


def test_hold_prevents_the_timeout() -> None:
    lv = make(timeout=5.0)
    alive(lv, now=1.0)
    lv.hold(A, "a", True)
    assert lv.next_deadline() is None
    assert lv.tick(1000.0) == []
    assert lv.state_of(A, "a") is State.ALIVE


def test_hold_release_with_now_restarts_the_silence() -> None:
    lv = make(timeout=5.0)
    alive(lv, now=1.0)
    lv.hold(A, "a", True)
    lv.hold(A, "a", False, now=100.0)
    assert lv.next_deadline() == 105.0
    assert lv.tick(104.0) == []
    assert lv.tick(105.0)[0] == ev("left", A, "a", 105.0, "timeout")
    assert status(lv, A, "a", 105.0).last_seen == 1.0  # last_seen is the last message


def test_hold_release_without_now_counts_from_the_last_message() -> None:
    lv = make(timeout=5.0)
    alive(lv, now=1.0)
    lv.hold(A, "a", True)
    lv.hold(A, "a", False)
    assert lv.next_deadline() == 6.0
    assert lv.tick(100.0)[0] == ev("left", A, "a", 100.0, "timeout")


def test_hold_does_not_prevent_a_disconnect() -> None:
    lv = make()
    alive(lv, now=1.0, conn=9)
    lv.hold(A, "a", True)
    assert lv.disconnected(A, 9, 2.0)[0] == ev("left", A, "a", 2.0, "disconnected")
    assert lv.state_of(A, "a") is State.GONE


def test_holds_are_counted_and_never_negative() -> None:
    lv = make((A, B), timeout=5.0)
    alive(lv, now=1.0)
    lv.hold(A, "a", True)
    lv.hold(A, "a", True)
    lv.hold(A, "a", False, now=2.0)
    assert lv.tick(50.0) == []  # one hold left
    lv.hold(A, "a", False, now=50.0)
    assert lv.next_deadline() == 55.0
    lv.hold(A, "a", False, now=51.0)  # extra release: stays at zero, silence unchanged
    lv.hold(A, "a", False, now=52.0)
    assert lv.next_deadline() == 55.0
    lv.hold(A, "a", True)  # a single hold is enough again
    assert lv.next_deadline() is None
    assert lv.tick(60.0) == []


def test_hold_on_an_unknown_server_is_ignored() -> None:
    lv = make()
    lv.hold(A, "nobody", True)
    lv.hold(A, "nobody", False, now=1.0)
    assert lv.state_of(A, "nobody") is None
    assert lv.snapshot(1.0) == (ServerStatus(A, None, State.EXPECTED, 0.0, None, None, 0, None, None),)


def test_held_server_still_counts_as_alive_for_the_end() -> None:
    lv = make((A,), timeout=1.0)
    alive(lv)
    lv.hold(A, "a", True)
    assert lv.tick(10.0) == []
    assert not lv.ended


# ---------------------------------------------------------------------------- duplicates


def test_two_ids_on_one_port_are_reported_once() -> None:
    lv = make((A,), timeout=5.0)
    alive(lv, A, "a", 1.0, conn=1)
    assert lv.message(A, "b", 2.0, conn=2) == [ev("joined", A, "b", 2.0), ev("duplicate", A, "b", 2.0, None, "a")]
    assert lv.state_of(A, "a") is State.ALIVE
    assert lv.state_of(A, "b") is State.ALIVE
    assert lv.alive_count == 2
    assert lv.message(A, "a", 3.0) == []
    assert lv.message(A, "b", 3.0) == []
    assert lv.disconnected(A, 2, 4.0) == [ev("left", A, "b", 4.0, "disconnected")]
    assert lv.message(A, "b", 5.0) == [ev("returned", A, "b", 5.0)]  # pair already reported
    assert lv.disconnected(A, 1, 6.0) == [ev("left", A, "a", 6.0, "disconnected")]
    assert lv.message(A, "a", 7.0) == [ev("returned", A, "a", 7.0)]  # same pair, other order


def test_a_third_id_is_reported_against_each_alive_one() -> None:
    lv = make((A,))
    alive(lv, A, "b", 1.0)
    lv.message(A, "a", 1.0)
    assert lv.message(A, "c", 2.0) == [
        ev("joined", A, "c", 2.0),
        ev("duplicate", A, "c", 2.0, None, "a"),
        ev("duplicate", A, "c", 2.0, None, "b"),
    ]


def test_no_duplicate_against_a_server_that_is_not_alive() -> None:
    lv = make((A,))
    closed(lv, A, "a")
    assert lv.message(A, "b", 3.0) == [ev("joined", A, "b", 3.0)]
    # when "a" comes back while "b" is alive, the pair is reported (first time both ALIVE)
    assert lv.message(A, "a", 4.0) == [ev("returned", A, "a", 4.0), ev("duplicate", A, "a", 4.0, None, "b")]


def test_same_id_on_two_ports_is_two_servers_not_a_duplicate() -> None:
    lv = make((A, B))
    alive(lv, A, "cam", 1.0)
    alive(lv, B, "cam", 1.0)
    assert lv.alive_count == 2


# ----------------------------------------------------------------------------- disconnect


def test_disconnect_only_affects_the_matching_conn() -> None:
    lv = make((A, B))
    alive(lv, A, "a", 1.0, conn=10)
    lv.message(A, "b", 1.0, conn=11)
    lv.message(A, "n", 1.0)  # conn None: never affected
    alive(lv, B, "x", 1.0, conn=10)  # same fd number on another port
    assert lv.disconnected(A, 12, 2.0) == []
    assert lv.disconnected(A, 10, 2.0) == [ev("left", A, "a", 2.0, "disconnected")]
    assert [lv.state_of(*k) for k in ((A, "a"), (A, "b"), (A, "n"), (B, "x"))] == [
        State.GONE,
        State.ALIVE,
        State.ALIVE,
        State.ALIVE,
    ]


def test_disconnect_of_several_servers_on_one_conn() -> None:
    lv = make((A,))
    lv.message(A, "b", 1.0, conn=5)
    lv.message(A, "a", 1.0, conn=5)
    assert lv.disconnected(A, 5, 2.0) == [
        ev("left", A, "a", 2.0, "disconnected"),
        ev("left", A, "b", 2.0, "disconnected"),
        ev("ended", None, None, 2.0),
    ]


def test_a_spared_server_is_judged_by_its_silence_not_by_a_reused_descriptor() -> None:
    """The old connection on fd 5 ended, and a new one on the same number already carried
    a message from "a": the drop spares "a" (its silence still counts), not "b"."""
    lv = make((A,), timeout=1.5)
    lv.message(A, "a", 1.0, conn=5)
    lv.message(A, "b", 1.0, conn=5)
    assert lv.disconnected(A, 5, 2.0, spare={"a"}) == [ev("left", A, "b", 2.0, "disconnected")]
    assert lv.state_of(A, "a") is State.ALIVE
    assert lv.tick(2.6) == [ev("left", A, "a", 2.6, "timeout"), ev("ended", None, None, 2.6)]


def test_latest_conn_wins() -> None:
    lv = make((A,))
    alive(lv, conn=3)
    lv.message(A, "a", 2.0, conn=4)
    assert lv.disconnected(A, 3, 3.0) == []
    lv.message(A, "a", 4.0)  # no conn: the known one is kept
    assert lv.disconnected(A, 4, 5.0)[0] == ev("left", A, "a", 5.0, "disconnected")


def test_disconnect_does_not_touch_gone_or_closed_servers() -> None:
    lv = make((A, B))
    alive(lv, A, "a", 1.0, conn=3)
    lv.bye(A, "a", 2.0)
    assert lv.disconnected(A, 3, 3.0) == []
    assert lv.state_of(A, "a") is State.CLOSED
    assert lv.disconnected(C, 3, 3.0) == []  # unknown port


def test_a_reconnect_is_not_a_departure_when_the_old_connection_ends_late() -> None:
    """A partition: the server times out on conn 7, comes back on conn 8, a late message
    flushed on the dying conn 7 arrives, and only then is conn 7 reported dropped (the
    flapping fault test caught this as an extra left/returned pair)."""
    lv = make((A, B), timeout=1.5)  # (B expected: the stream does not end)
    alive(lv, now=1.0, conn=7)
    assert lv.tick(2.5) == [ev("left", A, "a", 2.5, "timeout")]
    assert lv.message(A, "a", 3.0, conn=8) == [ev("returned", A, "a", 3.0)]
    assert lv.message(A, "a", 3.1, conn=7) == []  # late, on the old connection
    assert lv.disconnected(A, 7, 3.2) == []
    assert lv.state_of(A, "a") is State.ALIVE
    assert lv.disconnected(A, 8, 3.3) == [ev("left", A, "a", 3.3, "disconnected")]


def test_a_dropped_connection_is_forgotten_even_for_a_gone_server() -> None:
    lv = make((A, B), timeout=1.5)  # (B expected: the stream does not end)
    alive(lv, now=1.0, conn=7)
    lv.tick(2.5)  # gone by its silence, conn 7 still open
    assert lv.disconnected(A, 7, 2.6) == []  # nothing to report: already gone
    lv.message(A, "a", 3.0, conn=8)
    assert lv.disconnected(A, 8, 4.0) == [ev("left", A, "a", 4.0, "disconnected")]


def test_returning_on_a_new_conn_forgets_the_old_one() -> None:
    lv = make((A, B))
    gone(lv)  # was on conn 7
    lv.message(A, "a", 3.0, conn=8)
    assert lv.disconnected(A, 7, 4.0) == []
    assert lv.disconnected(A, 8, 4.0)[0].kind == "left"


# ------------------------------------------------------------------------------ snapshot


def test_snapshot_content_and_order() -> None:
    lv = make((C, A, B), timeout=5.0, grace=10.0, now=0.0)
    lv.message(B, "zeta", 1.0, session=2)
    lv.message(B, "alpha", 2.0)
    lv.message(B, "alpha", 3.0)
    lv.message(A, "m", 1.5, conn=4)
    lv.disconnected(A, 4, 2.5)
    assert lv.snapshot(4.0) == (
        ServerStatus(A, "m", State.GONE, 2.5, 1.5, 2.5, 1, 0, "disconnected"),
        ServerStatus(B, "alpha", State.ALIVE, 2.0, 3.0, 1.0, 2, 0, None),
        ServerStatus(B, "zeta", State.ALIVE, 1.0, 1.0, 3.0, 1, 2, None),
        ServerStatus(C, None, State.EXPECTED, 0.0, None, None, 0, None, None),
    )
    lv.tick(10.0)
    rows = lv.snapshot(10.0)
    assert [(r.port, r.server_id, r.state) for r in rows] == [
        (A, "m", State.GONE),
        (B, "alpha", State.GONE),
        (B, "zeta", State.GONE),
        (C, None, State.GONE),
    ]
    assert rows[-1].reason == "never_connected"
    assert [r.reason for r in rows[1:3]] == ["timeout", "timeout"]


def test_snapshot_counts_every_message_across_states() -> None:
    lv = make((A,))
    alive(lv, conn=1)
    lv.message(A, "a", 1.5)
    lv.disconnected(A, 1, 2.0)
    lv.message(A, "a", 3.0)
    assert status(lv, A, "a", 3.0).messages == 3


def test_snapshot_is_frozen() -> None:
    lv = make()
    row = lv.snapshot(0.0)[0]
    with pytest.raises(AttributeError):
        row.state = State.ALIVE  # type: ignore[misc]
    event = lv.tick(0.0)
    assert event == []
    with pytest.raises(AttributeError):
        ev("joined", A, "a", 1.0).kind = "left"  # type: ignore[misc]


def test_state_of_unknown_is_none() -> None:
    lv = make((A,))
    assert lv.state_of(A, "nobody") is None
    assert lv.state_of(B, None) is None


# ---------------------------------------------------------------------------- idle timeout


def test_idle_timeout_ends_even_with_alive_and_expected_entries() -> None:
    lv = make((A, B), timeout=100.0, grace=None, idle=10.0)
    alive(lv, A, "a", 1.0)
    lv.hold(A, "a", True)
    assert lv.tick(10.999) == []
    assert lv.tick(11.0) == [ev("ended", None, None, 11.0)]
    assert lv.ended
    assert lv.tick(1000.0) == []  # holds and no grace: nothing else ever fires


def test_idle_timeout_counts_from_the_start_without_any_message() -> None:
    lv = make((A,), idle=3.0, now=7.0)
    assert lv.tick(9.9) == []
    assert lv.tick(10.0) == [ev("ended", None, None, 10.0)]


def test_every_observation_postpones_the_idle_timeout() -> None:
    lv = make((A, B), timeout=100.0, idle=5.0)
    alive(lv, A, "a", 1.0, conn=3)
    assert lv.next_deadline() == 6.0
    lv.message(A, "a", 2.0)
    assert lv.next_deadline() == 7.0
    lv.disconnected(A, 99, 3.0)  # even one that changes nothing
    assert lv.next_deadline() == 8.0
    lv.bye(B, "zz", 4.0)
    assert lv.next_deadline() == 9.0
    assert lv.tick(8.9) == []
    assert lv.tick(9.0) == [ev("ended", None, None, 9.0)]


def test_after_idle_end_servers_still_time_out() -> None:
    lv = make((A,), timeout=10.0, idle=2.0)
    alive(lv, now=1.0)
    assert lv.tick(3.0) == [ev("ended", None, None, 3.0)]
    assert lv.next_deadline() == 11.0
    assert lv.tick(11.0) == [ev("left", A, "a", 11.0, "timeout")]


# ------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"timeout": 0.0}, "timeout"),
        ({"timeout": -1.0}, "timeout"),
        ({"timeout": math.inf}, "timeout"),
        ({"timeout": math.nan}, "timeout"),
        ({"timeout": None}, "timeout"),
        ({"timeout": "5"}, "timeout"),
        ({"startup_grace": -0.1}, "startup_grace"),
        ({"startup_grace": math.nan}, "startup_grace"),
        ({"idle_timeout": 0.0}, "idle_timeout"),
        ({"idle_timeout": -2.0}, "idle_timeout"),
        ({"ports": []}, "ports"),
    ],
)
def test_invalid_configuration(kwargs: dict[str, object], option: str) -> None:
    args: dict[str, object] = {"ports": [A], "timeout": 5.0, "startup_grace": None, "now": 0.0}
    args.update(kwargs)
    with pytest.raises(ConfigError) as info:
        Liveness(**args)  # type: ignore[arg-type]
    assert info.value.option == option
    assert isinstance(info.value, ValueError)


def test_repeated_ports_are_one_port() -> None:
    lv = make((A, A, B), grace=1.0)
    assert [r.port for r in lv.snapshot(0.0)] == [A, B]
    assert len(lv.tick(1.0)) == 3  # two "left", one "ended"


# -------------------------------------------------------------- random sequences (Hypothesis)

PORTS = (A, B)
IDS = ("a", "b")

_op = st.one_of(
    st.tuples(
        st.just("message"),
        st.sampled_from((A, B, C)),
        st.sampled_from(IDS),
        st.sampled_from((0, 1)),
        st.sampled_from((None, 1, 2)),
    ),
    st.tuples(st.just("bye"), st.sampled_from((A, B, C)), st.sampled_from(IDS)),
    st.tuples(st.just("disconnected"), st.sampled_from((A, B, C)), st.sampled_from((1, 2))),
    st.tuples(st.just("hold"), st.sampled_from(PORTS), st.sampled_from(IDS), st.booleans(), st.booleans()),
    st.tuples(st.just("tick")),
)
_step = st.tuples(st.sampled_from((0.0, 0.0, 0.25, 1.0, 2.5, 3.0, 7.0)), _op)


def _run(lv: Liveness, op: tuple, now: float) -> list[Event] | None:
    """Apply one generated operation."""
    name = op[0]
    if name == "message":
        return lv.message(op[1], op[2], now, session=op[3], conn=op[4])
    if name == "bye":
        return lv.bye(op[1], op[2], now)
    if name == "disconnected":
        return lv.disconnected(op[1], op[2], now)
    if name == "hold":
        lv.hold(op[1], op[2], op[3], now=now if op[4] else None)
        return None
    return lv.tick(now)


class _Checker:
    """Invariants over the whole event history of one random run."""

    def __init__(self, lv: Liveness) -> None:
        self.lv = lv
        self.present: dict[tuple[int, str], bool] = {}
        self.known: set[tuple[int, str]] = set()  # has an entry (joined, or an unknown bye)
        self.never_connected: set[int] = set()
        self.ended_events = 0
        self.was_ended = False

    def events(self, events: list[Event], now: float) -> None:
        for i, event in enumerate(events):
            assert event.kind in EVENT_KINDS
            assert event.at == now
            if event.kind == "ended":
                assert i == len(events) - 1
                assert (event.port, event.server_id, event.reason, event.other_id) == (None, None, None, None)
                self.ended_events += 1
                assert self.ended_events == 1
                continue
            assert event.port is not None
            if event.server_id is None:
                assert event.kind == "left" and event.reason == "never_connected"
                assert event.port in PORTS and event.port not in self.never_connected
                self.never_connected.add(event.port)
                continue
            key = (event.port, event.server_id)
            present = self.present.get(key, False)
            if event.kind in ("joined", "returned"):
                assert not present, (event, "joined/returned twice in a row")
                assert (event.kind == "joined") == (key not in self.known)
                self.known.add(key)
                self.present[key] = True
                assert event.reason is None and event.other_id is None
            elif event.kind == "left":
                assert present, (event, "left without joined/returned")
                assert event.reason in ("closed", "disconnected", "timeout")
                self.present[key] = False
            elif event.kind == "restarted":
                assert present
            else:  # duplicate
                assert present and event.other_id not in (None, event.server_id)
                assert self.present.get((event.port, event.other_id))  # type: ignore[arg-type]
        # the ended flag matches the "ended" events and is latched
        assert self.lv.ended == (self.ended_events == 1)
        assert self.lv.ended or not self.was_ended
        self.was_ended = self.lv.ended

    def bye(self, port: int, server_id: str) -> None:
        """A bye creates the entry of an unknown server (CLOSED, no event)."""
        self.known.add((port, server_id))

    def states(self, now: float, idle_since: float, idle: float | None, *, after_tick: bool) -> None:
        lv = self.lv
        rows = lv.snapshot(now)
        assert list(rows) == sorted(rows, key=lambda r: (r.port, r.server_id or ""))
        ports_with_servers = {r.port for r in rows if r.server_id is not None}
        for row in rows:
            if row.server_id is None:
                assert row.port not in ports_with_servers
                assert row.state in (State.EXPECTED, State.GONE)
            else:
                assert row.state is not State.EXPECTED
                expected_present = self.present.get((row.port, row.server_id), False)
                assert (row.state is State.ALIVE) == expected_present
                assert (row.reason is None) == (row.state is State.ALIVE)
                if row.last_seen is not None:
                    assert row.age == now - row.last_seen
        assert lv.alive_count == sum(r.state is State.ALIVE for r in rows)
        waiting = any(r.state in (State.ALIVE, State.EXPECTED) for r in rows)
        if not waiting:
            assert lv.ended
        if not lv.ended:
            assert waiting
            # only tick() applies the idle timeout
            assert not after_tick or idle is None or now < idle_since + idle

    def deadline(self, now: float) -> None:
        lv = self.lv
        deadline = lv.next_deadline()
        if deadline is None:
            assert copy.deepcopy(lv).tick(now + 1e9) == []
        elif deadline <= now:
            assert copy.deepcopy(lv).tick(now) != []  # overdue (no tick ran meanwhile)
        else:
            assert copy.deepcopy(lv).tick(math.nextafter(deadline, -math.inf)) == []
            assert copy.deepcopy(lv).tick(deadline) != []


@settings(max_examples=400, deadline=None)
@given(
    timeout=st.sampled_from((1.0, 2.5, 6.0)),
    grace=st.sampled_from((None, 0.0, 3.0, 20.0)),
    idle=st.sampled_from((None, None, 4.0, 15.0)),
    steps=st.lists(_step, max_size=40),
)
def test_random_sequences_keep_the_invariants(
    timeout: float, grace: float | None, idle: float | None, steps: list[tuple[float, tuple]]
) -> None:
    now = 0.0
    lv = Liveness(PORTS, timeout=timeout, startup_grace=grace, idle_timeout=idle, now=now)
    checker = _Checker(lv)
    idle_since = now
    checker.deadline(now)
    for dt, op in steps:
        now += dt
        events = _run(lv, op, now)
        if op[0] in ("message", "bye", "disconnected"):
            idle_since = now
        if events is not None:
            checker.events(events, now)
        if op[0] == "bye":
            checker.bye(op[1], op[2])
        checker.states(now, idle_since, idle, after_tick=op[0] == "tick")
        checker.deadline(now)
    # finally let every deadline fire: the alternation still holds and at most one "ended"
    for _ in range(10):
        deadline = lv.next_deadline()
        if deadline is None:
            break
        now = max(now, deadline)
        checker.events(lv.tick(now), now)
        checker.states(now, idle_since, idle, after_tick=True)
