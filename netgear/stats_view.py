"""A live per-server table from the hub's snapshots: state, fps, latency, age, drops, bytes.

:class:`LiveStats` turns successive :class:`~netgear.HubSnapshot` objects (and, if you
feed it packets, their latency) into :class:`Row` objects; :func:`format_table` prints
them as plain text; :class:`StatsView` refreshes a table in the terminal, with ``rich``
when it is installed (``pip install netgear[rich]``) and the output is a terminal, and
as plain text blocks otherwise.

Example::

    live = LiveStats()
    for packet in hub:
        live.observe(packet)
    print(format_table(live.rows(hub.snapshot())))
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, TextIO, Tuple

from .packet import Packet
from .stats import HubSnapshot

__all__ = ["Row", "LiveStats", "format_table", "StatsView", "rich_available"]

Key = Tuple[int, Optional[str]]

COLUMNS = ("port", "server", "state", "frames", "fps", "latency ms", "age s", "dropped", "rejected", "MB")


@dataclass(frozen=True)
class Row:
    """One server's line of the table."""

    port: int
    server_id: Optional[str]
    state: str
    frames: int
    fps: float
    latency: Optional[float]
    age: Optional[float]
    dropped: int
    rejected: int
    bytes: int
    reason: Optional[str] = None

    def cells(self) -> List[str]:
        """The row as text cells, in :data:`COLUMNS` order."""
        state = self.state if self.reason in (None, self.state) else f"{self.state} ({self.reason})"
        return [
            str(self.port),
            self.server_id or "-",
            state,
            str(self.frames),
            f"{self.fps:.1f}",
            "-" if self.latency is None else f"{self.latency * 1000:.1f}",
            "-" if self.age is None else f"{self.age:.1f}",
            str(self.dropped),
            str(self.rejected),
            f"{self.bytes / 1e6:.1f}",
        ]


class LiveStats:
    """Per-server rates (from frame counts between snapshots) and latency (from packets).

    The rate is computed over the interval since the previous :meth:`rows` call that saw
    the server; the latency is a moving average of ``received_at - sent_at``.
    """

    def __init__(self, smoothing: float = 0.2) -> None:
        self._smoothing = smoothing
        self._last: Dict[Key, Tuple[float, int]] = {}
        self._fps: Dict[Key, float] = {}
        self._latency: Dict[Key, float] = {}

    def observe(self, packet: Packet) -> None:
        """Account one received packet's latency."""
        key = (packet.port, packet.server_id)
        value = max(0.0, packet.latency)
        old = self._latency.get(key)
        self._latency[key] = value if old is None else old + self._smoothing * (value - old)

    def rates(self) -> Dict[Key, float]:
        """The frame rates computed by the last :meth:`rows` call."""
        return dict(self._fps)

    def rows(self, snap: HubSnapshot) -> List[Row]:
        """One :class:`Row` per server (and per port nobody connected to) in ``snap``."""
        now = time.monotonic()
        rows = []
        for s in snap.servers:
            key = (s.port, s.server_id)
            prev = self._last.get(key)
            if prev is not None and now - prev[0] >= 0.2:
                self._fps[key] = (s.frames - prev[1]) / (now - prev[0])
                self._last[key] = (now, s.frames)
            elif prev is None:
                self._last[key] = (now, s.frames)
            fps = self._fps.get(key, 0.0) if s.state == "alive" else 0.0
            rows.append(
                Row(
                    port=s.port,
                    server_id=s.server_id,
                    state=s.state,
                    frames=s.frames,
                    fps=fps,
                    latency=self._latency.get(key),
                    age=s.age,
                    dropped=s.dropped,
                    rejected=sum(snap.rejected(s.port).values()),
                    bytes=s.bytes,
                    reason=s.reason,
                )
            )
        return rows


def format_table(rows: Sequence[Row]) -> str:
    """Rows as an aligned plain-text table with a header line.

    >>> print(format_table([]))
    port  server  state  frames  fps  latency ms  age s  dropped  rejected  MB
    """
    table = [list(COLUMNS)] + [r.cells() for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    left = {1, 2}
    out = []
    for line in table:
        cells = [c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def rich_available() -> bool:
    """True if the optional ``rich`` package can be imported."""
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


class StatsView:
    """Refreshes a table of :class:`Row` objects on ``out`` at most every ``interval`` s.

    With ``rich`` installed and ``out`` a terminal (or ``use_rich=True``), one table is
    redrawn in place; otherwise each refresh prints a plain block ending in a blank line.
    """

    def __init__(self, out: TextIO, interval: float = 1.0, use_rich: Optional[bool] = None) -> None:
        self.out = out
        self.interval = interval
        if use_rich is None:
            use_rich = rich_available() and hasattr(out, "isatty") and out.isatty()
        self._live = None
        if use_rich:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(console=Console(file=out), auto_refresh=False)
            self._live.start()
        self._next = time.monotonic()

    def due(self) -> bool:
        """True when the next refresh is due."""
        return time.monotonic() >= self._next

    def update(self, rows: Sequence[Row], title: str = "") -> None:
        """Show ``rows`` now."""
        self._next = time.monotonic() + self.interval
        if self._live is not None:
            self._live.update(_rich_table(rows, title), refresh=True)
        else:
            print((title + "\n" if title else "") + format_table(rows) + "\n", file=self.out, flush=True)

    def close(self) -> None:
        """Stop redrawing (the last table stays on screen)."""
        if self._live is not None:
            self._live.stop()
            self._live = None


def _rich_table(rows: Sequence[Row], title: str):  # type: ignore[no-untyped-def]
    from rich.table import Table

    colours = {"alive": "green", "gone": "red", "closed": "yellow", "expected": "cyan"}
    table = Table(title=title or None)
    for i, name in enumerate(COLUMNS):
        table.add_column(name, justify="left" if i in (1, 2) else "right")
    for row in rows:
        cells = row.cells()
        colour = colours.get(row.state)
        if colour:
            cells[2] = f"[{colour}]{cells[2]}[/{colour}]"
        table.add_row(*cells)
    return table
