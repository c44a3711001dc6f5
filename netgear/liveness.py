"""Per-server liveness: a pure state machine, driven by the hub's I/O loop.

Nothing here touches a socket, a thread or a clock: every observation carries the
monotonic time ``now`` it happened at, and the caller (the hub) logs the returned
:class:`Event` objects.  That keeps the rules testable with plain floats.

Model
-----
The hub binds a list of ports.  A *server* is keyed by ``(port, server_id)``; two ids on
one port are two servers (reported once as ``"duplicate"``).  Before anybody is seen on a
configured port, that port has a *port-level* entry (``server_id is None``) in
:attr:`State.EXPECTED`; it disappears as soon as the port has a server entry, or becomes
:attr:`State.GONE` (reason ``"never_connected"``) when the startup grace runs out.

Every state change goes through :data:`TRANSITIONS`, a table keyed by
``(state, observation)``; ``None`` as a state means "not known yet".  A pair missing from
the table is never looked up: observations only select entries they apply to (a timeout
only looks at ALIVE servers, a disconnect only at ALIVE servers for which it was the last
connection they were heard on, the grace only at EXPECTED ports).

Deadlines
---------
All deadlines are inclusive: an ALIVE server silent since ``t`` times out at any
``now >= t + timeout``, the grace expires at ``now >= start + startup_grace`` and the idle
timeout at ``now >= last_activity + idle_timeout``.  :meth:`Liveness.next_deadline` returns
exactly that instant, so ``tick(next_deadline())`` always produces the transition and the
hub's loop never spins on a deadline that does not fire.

Timeouts are applied by :meth:`Liveness.tick` only: a message that arrives late from a
server whose deadline passed without a tick simply keeps it ALIVE.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Collection, Iterable, NamedTuple

from netgear.errors import ConfigError

__all__ = [
    "State",
    "Obs",
    "Transition",
    "TRANSITIONS",
    "REASONS",
    "EVENT_KINDS",
    "Event",
    "ServerStatus",
    "Liveness",
]


class State(enum.Enum):
    """Liveness state of one server (or of a configured port nobody was seen on)."""

    EXPECTED = "expected"
    ALIVE = "alive"
    GONE = "gone"
    CLOSED = "closed"


class Obs(enum.Enum):
    """The observations that can change a state (keys of :data:`TRANSITIONS`)."""

    MESSAGE = "message"  # a frame or heartbeat, same session as last seen (or first)
    NEW_SESSION = "new_session"  # a message whose session differs from the last seen one
    BYE = "bye"  # the server said goodbye
    DISCONNECT = "disconnect"  # the last connection it was heard on dropped
    TIMEOUT = "timeout"  # silent for the timeout while not held
    GRACE = "grace"  # a port still EXPECTED when the startup grace ran out


class Transition(NamedTuple):
    """Result of one table lookup: the new state and the event kind to emit (or None)."""

    state: State
    event: str | None


EVENT_KINDS: tuple[str, ...] = ("joined", "returned", "restarted", "left", "duplicate", "ended")

#: ``(current state or None for unknown, observation) -> (new state, event kind or None)``.
TRANSITIONS: dict[tuple[State | None, Obs], Transition] = {
    # messages (a new server id, or a known one)
    (None, Obs.MESSAGE): Transition(State.ALIVE, "joined"),
    (None, Obs.NEW_SESSION): Transition(State.ALIVE, "joined"),
    (State.ALIVE, Obs.MESSAGE): Transition(State.ALIVE, None),
    (State.ALIVE, Obs.NEW_SESSION): Transition(State.ALIVE, "restarted"),
    (State.GONE, Obs.MESSAGE): Transition(State.ALIVE, "returned"),
    (State.GONE, Obs.NEW_SESSION): Transition(State.ALIVE, "returned"),
    (State.CLOSED, Obs.MESSAGE): Transition(State.ALIVE, "returned"),
    (State.CLOSED, Obs.NEW_SESSION): Transition(State.ALIVE, "returned"),
    # goodbye
    (None, Obs.BYE): Transition(State.CLOSED, None),
    (State.ALIVE, Obs.BYE): Transition(State.CLOSED, "left"),
    (State.GONE, Obs.BYE): Transition(State.CLOSED, None),
    (State.CLOSED, Obs.BYE): Transition(State.CLOSED, None),
    # transport and clock
    (State.ALIVE, Obs.DISCONNECT): Transition(State.GONE, "left"),
    (State.ALIVE, Obs.TIMEOUT): Transition(State.GONE, "left"),
    (State.EXPECTED, Obs.GRACE): Transition(State.GONE, "left"),
}

#: Why an entry left (``Event.reason`` and ``ServerStatus.reason``), per observation.
REASONS: dict[Obs, str] = {
    Obs.BYE: "closed",
    Obs.DISCONNECT: "disconnected",
    Obs.TIMEOUT: "timeout",
    Obs.GRACE: "never_connected",
}

_LEAVING_STATES = (State.GONE, State.CLOSED)


@dataclass(frozen=True)
class Event:
    """Something the hub should log/report; ``at`` is the ``now`` of the observation.

    ``kind`` is one of :data:`EVENT_KINDS`.  ``port``/``server_id`` are None for
    ``"ended"``; ``server_id`` is None for a port that never connected.  ``reason`` is
    set on ``"left"`` events, ``other_id`` on ``"duplicate"`` events (the id that was
    already ALIVE on that port).
    """

    kind: str
    port: int | None
    server_id: str | None
    at: float
    reason: str | None = None
    other_id: str | None = None


@dataclass(frozen=True)
class ServerStatus:
    """One row of :meth:`Liveness.snapshot`."""

    port: int
    server_id: str | None
    state: State
    since: float
    last_seen: float | None
    age: float | None
    messages: int
    session: int | None
    reason: str | None


class _Entry:
    """Mutable bookkeeping of one server (or of one port-level entry)."""

    __slots__ = (
        "port",
        "server_id",
        "state",
        "since",
        "last_seen",
        "quiet_since",
        "messages",
        "session",
        "conns",
        "reason",
        "holds",
    )

    def __init__(self, port: int, server_id: str | None, since: float) -> None:
        self.port = port
        self.server_id = server_id
        self.state: State | None = None
        self.since = since
        self.last_seen: float | None = None
        # start of the silence the timeout counts: the last message, or the release of
        # the last hold, whichever is later
        self.quiet_since = since
        self.messages = 0
        self.session: int | None = None
        # the connections (socket fds) it was heard on that have not been reported
        # dropped: a reconnecting server is briefly on two, the dying one and the new one
        self.conns: set[int] = set()
        self.reason: str | None = None
        self.holds = 0

    def status(self, now: float) -> ServerStatus:
        """Freeze this entry into a :class:`ServerStatus` as seen at ``now``."""
        assert self.state is not None
        return ServerStatus(
            port=self.port,
            server_id=self.server_id,
            state=self.state,
            since=self.since,
            last_seen=self.last_seen,
            age=None if self.last_seen is None else now - self.last_seen,
            messages=self.messages,
            session=self.session,
            reason=self.reason,
        )


def _check_duration(
    option: str, value: float | None, *, allow_none: bool, allow_zero: bool
) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a valid (finite) duration."""
    if value is None:
        if not allow_none:
            raise ConfigError(option, "must be a number of seconds, not None")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(option, f"must be a number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero) or math.isinf(value):
        raise ConfigError(option, f"must be a finite positive number of seconds, got {value!r}")


class Liveness:
    """Liveness of every server seen on the hub's ports (pure; see the module docstring).

    ``timeout``: silence after which an ALIVE, non-held server becomes GONE.
    ``startup_grace``: seconds after ``now`` at which ports still EXPECTED become GONE
    (None: wait forever).  ``idle_timeout``: if set, the stream ends once no message, bye
    or disconnect was observed for that long (counted from ``now`` or the last one).
    """

    def __init__(
        self,
        ports: Iterable[int],
        *,
        timeout: float,
        startup_grace: float | None,
        idle_timeout: float | None = None,
        now: float,
    ) -> None:
        _check_duration("timeout", timeout, allow_none=False, allow_zero=False)
        _check_duration("startup_grace", startup_grace, allow_none=True, allow_zero=True)
        _check_duration("idle_timeout", idle_timeout, allow_none=True, allow_zero=False)
        port_list = list(dict.fromkeys(ports))
        if not port_list:
            raise ConfigError("ports", "at least one port is needed")
        self._timeout = float(timeout)
        self._idle_timeout = idle_timeout
        self._start = now
        self._grace_at: float | None = None if startup_grace is None else now + startup_grace
        self._last_activity = now
        self._servers: dict[tuple[int, str], _Entry] = {}
        self._by_port: dict[int, dict[str, _Entry]] = {}
        self._alive: dict[tuple[int, str], _Entry] = {}
        self._port_entries: dict[int, _Entry] = {}
        self._expected = 0  # port-level entries still EXPECTED
        self._duplicates: set[tuple[int, frozenset[str]]] = set()
        self._ended = False
        for port in port_list:
            entry = _Entry(port, None, now)
            entry.state = State.EXPECTED
            self._port_entries[port] = entry
            self._expected += 1

    # ------------------------------------------------------------------ queries

    @property
    def ended(self) -> bool:
        """True once the stream ended (latched: never goes back to False)."""
        return self._ended

    @property
    def alive_count(self) -> int:
        """Number of servers currently ALIVE."""
        return len(self._alive)

    def state_of(self, port: int, server_id: str | None) -> State | None:
        """State of that server (``server_id=None``: of the port-level entry), or None."""
        if server_id is None:
            entry = self._port_entries.get(port)
        else:
            entry = self._servers.get((port, server_id))
        return None if entry is None else entry.state

    def snapshot(self, now: float) -> tuple[ServerStatus, ...]:
        """Every entry as a :class:`ServerStatus`, sorted by ``(port, server_id or "")``."""
        entries = [*self._servers.values(), *self._port_entries.values()]
        entries.sort(key=lambda e: (e.port, e.server_id or ""))
        return tuple(entry.status(now) for entry in entries)

    def next_deadline(self) -> float | None:
        """Earliest ``now`` at which :meth:`tick` could produce an event (None: none).

        Exact and inclusive: ``tick(deadline)`` produces the transition, any earlier
        ``tick`` does not.
        """
        # (asked once per round of the hub's loop: the earliest silence deadline without a
        # call per server, the same value as min(_silence_deadline(e)))
        quiet = min((e.quiet_since for e in self._alive.values() if not e.holds), default=None)
        candidates = [] if quiet is None else [quiet + self._timeout]
        if self._expected and self._grace_at is not None:
            candidates.append(self._grace_at)
        idle_at = self._idle_deadline()
        if idle_at is not None:
            candidates.append(idle_at)
        return min(candidates, default=None)

    # ------------------------------------------------------------- observations

    def message(
        self,
        port: int,
        server_id: str,
        now: float,
        *,
        session: int = 0,
        conn: int | None = None,
    ) -> list[Event]:
        """A frame or heartbeat from ``(port, server_id)`` arrived on connection ``conn``.

        ``conn`` (the socket fd) joins the connections the server is known on, until
        :meth:`disconnected` reports it dropped.  The common case (an ALIVE server, same
        session) is O(1) and returns ``[]``.
        """
        self._last_activity = now
        entry = self._servers.get((port, server_id))
        if entry is not None and entry.state is State.ALIVE and entry.session == session:
            entry.last_seen = now
            entry.quiet_since = now
            entry.messages += 1
            if conn is not None:
                entry.conns.add(conn)
            return []
        return self._message_slow(port, server_id, now, session, conn, entry)

    def bye(self, port: int, server_id: str, now: float) -> list[Event]:
        """``(port, server_id)`` said goodbye: it becomes CLOSED ("left" only if it was ALIVE)."""
        self._last_activity = now
        entry = self._servers.get((port, server_id))
        if entry is None:
            entry = self._new_server(port, server_id, now)
        events = self._apply(entry, Obs.BYE, now)
        return self._finish(events, now)

    def disconnected(
        self, port: int, conn: int, now: float, *, spare: Collection[str] = ()
    ) -> list[Event]:
        """Connection ``conn`` on ``port`` dropped: it is forgotten for every server heard on
        it, and ALIVE servers it was the last known connection of become GONE.  A server
        that already spoke on a newer connection (it reconnected, and the old one's end is
        reported late) stays ALIVE.

        ``spare``: server ids not to judge by this drop, because their latest message may
        have come on a new connection that reuses the number ``conn`` (their silence
        timeout still applies).
        """
        self._last_activity = now
        victims = []
        for entry in self._by_port.get(port, {}).values():
            if conn not in entry.conns or entry.server_id in spare:
                continue
            entry.conns.discard(conn)
            if entry.state is State.ALIVE and not entry.conns:
                victims.append(entry)
        events: list[Event] = []
        for entry in sorted(victims, key=_server_key):
            events += self._apply(entry, Obs.DISCONNECT, now)
        return self._finish(events, now)

    def hold(self, port: int, server_id: str, held: bool, now: float | None = None) -> None:
        """Count one more (``held=True``) or one fewer held request from that server.

        While the count is above zero, silence does not time the server out (it is
        waiting for the hub's reply and cannot send heartbeats); disconnects still do.
        Pass ``now`` when releasing so the silence is counted from the release rather
        than from its last message.  Unknown servers are ignored; the count never goes
        below zero.
        """
        entry = self._servers.get((port, server_id))
        if entry is None:
            return
        if held:
            entry.holds += 1
            return
        if entry.holds:
            entry.holds -= 1
            if entry.holds == 0 and now is not None:
                entry.quiet_since = max(entry.quiet_since, now)

    def tick(self, now: float) -> list[Event]:
        """Apply the clock: silence timeouts, the startup grace, the idle timeout."""
        events: list[Event] = []
        expired = [
            e for e in self._alive.values() if not e.holds and now >= self._silence_deadline(e)
        ]
        for entry in sorted(expired, key=_server_key):
            events += self._apply(entry, Obs.TIMEOUT, now)
        if self._expected and self._grace_at is not None and now >= self._grace_at:
            for port in sorted(self._port_entries):
                entry = self._port_entries[port]
                if entry.state is State.EXPECTED:
                    events += self._apply(entry, Obs.GRACE, now)
        return self._finish(events, now)

    # ---------------------------------------------------------------- internals

    def _message_slow(
        self,
        port: int,
        server_id: str,
        now: float,
        session: int,
        conn: int | None,
        entry: _Entry | None,
    ) -> list[Event]:
        """Every message that is not "ALIVE, same session": may change state."""
        if entry is None:
            entry = self._new_server(port, server_id, now)
        was_alive = entry.state is State.ALIVE
        restarted = entry.session is not None and entry.session != session
        obs = Obs.NEW_SESSION if restarted else Obs.MESSAGE
        events = self._apply(entry, obs, now)
        entry.last_seen = now
        entry.quiet_since = now
        entry.messages += 1
        entry.session = session
        if conn is not None:
            entry.conns.add(conn)
        if not was_alive:
            events += self._duplicates_of(entry, now)
        return self._finish(events, now)

    def _new_server(self, port: int, server_id: str, now: float) -> _Entry:
        """Create the (stateless) entry of a server never seen; the port is now seen."""
        entry = _Entry(port, server_id, now)
        self._servers[(port, server_id)] = entry
        self._by_port.setdefault(port, {})[server_id] = entry
        port_entry = self._port_entries.pop(port, None)
        if port_entry is not None and port_entry.state is State.EXPECTED:
            self._expected -= 1
        return entry

    def _apply(self, entry: _Entry, obs: Obs, now: float) -> list[Event]:
        """Look ``(entry.state, obs)`` up in :data:`TRANSITIONS` and apply it."""
        new_state, kind = TRANSITIONS[(entry.state, obs)]
        old_state = entry.state
        if new_state is not old_state:
            self._set_state(entry, new_state, now)
        if new_state in _LEAVING_STATES:
            entry.reason = REASONS[obs]
        if kind is None:
            return []
        reason = REASONS[obs] if kind == "left" else None
        return [Event(kind, entry.port, entry.server_id, now, reason)]

    def _set_state(self, entry: _Entry, state: State, now: float) -> None:
        """Change ``entry``'s state, keeping the ALIVE index and the EXPECTED count right."""
        key = (entry.port, entry.server_id)
        if entry.state is State.ALIVE:
            del self._alive[key]  # type: ignore[arg-type]
        elif entry.state is State.EXPECTED:
            self._expected -= 1
        if state is State.ALIVE:
            self._alive[key] = entry  # type: ignore[index]
            entry.reason = None
        elif state is State.EXPECTED:
            self._expected += 1
        entry.state = state
        entry.since = now

    def _duplicates_of(self, entry: _Entry, now: float) -> list[Event]:
        """One "duplicate" event per other ALIVE id on the same port, once per pair ever."""
        events = []
        for other_id, other in sorted(self._by_port[entry.port].items()):
            if other is entry or other.state is not State.ALIVE:
                continue
            assert entry.server_id is not None
            pair = (entry.port, frozenset((entry.server_id, other_id)))
            if pair in self._duplicates:
                continue
            self._duplicates.add(pair)
            events.append(Event("duplicate", entry.port, entry.server_id, now, None, other_id))
        return events

    def _silence_deadline(self, entry: _Entry) -> float:
        """When that ALIVE server times out if nothing more is heard (holds aside)."""
        return entry.quiet_since + self._timeout

    def _idle_deadline(self) -> float | None:
        """When the idle timeout ends the stream (None: disabled or already ended)."""
        if self._idle_timeout is None or self._ended:
            return None
        return self._last_activity + self._idle_timeout

    def _finish(self, events: list[Event], now: float) -> list[Event]:
        """Append the one and only "ended" event if the stream just ended."""
        if not self._ended and self._should_end(now):
            self._ended = True
            events.append(Event("ended", None, None, now))
        return events

    def _should_end(self, now: float) -> bool:
        """Nothing ALIVE and no port EXPECTED, or idle for ``idle_timeout``."""
        if not self._alive and not self._expected:
            return True
        idle_at = self._idle_deadline()
        return idle_at is not None and now >= idle_at


def _server_key(entry: _Entry) -> tuple[int, str]:
    """Sort key giving events a deterministic order."""
    return (entry.port, entry.server_id or "")
