"""The live per-server table: rows from snapshots, plain text and rich output."""

from __future__ import annotations

import io

import pytest

from netgear import Packet
from netgear.stats import HubSnapshot, PortStats, ServerStats
from netgear.stats_view import LiveStats, Row, StatsView, format_table, rich_available


def snap(frames_a, state_b="gone"):
    servers = (
        ServerStats(port=5566, server_id="a", state="alive", since=0.0, age=0.05, reason=None, frames=frames_a,
                    bytes=3_000_000, dropped=2),
        ServerStats(port=5567, server_id="b", state=state_b, since=0.0, age=2.0, reason="timeout", frames=9),
    )
    ports = (PortStats(5566, "tcp://*:5566", {"bad_magic": 3}), PortStats(5567, "tcp://*:5567", {}))
    return HubSnapshot(at=0.0, pattern="reqrep", ended=False, ports=ports, servers=servers)


def test_rows_rates_and_latency(monkeypatch):
    clock = iter([100.0, 101.0])
    monkeypatch.setattr("netgear.stats_view.time.monotonic", lambda: next(clock))
    live = LiveStats()
    live.observe(Packet(5566, None, None, False, "a", "5566", 1, sent_at=10.0, received_at=10.004))
    live.rows(snap(10))
    a, b = live.rows(snap(40))
    assert (a.port, a.server_id, a.state, a.frames, a.fps) == (5566, "a", "alive", 40, 30.0)
    assert a.latency == pytest.approx(0.004) and a.rejected == 3 and a.dropped == 2
    assert b.fps == 0.0 and b.latency is None  # gone servers have no rate
    assert live.rates()[(5566, "a")] == 30.0


def test_plain_table_is_aligned_with_one_line_per_server():
    rows = [
        Row(5566, "a", "alive", 40, 30.0, 0.004, 0.05, 2, 3, 3_000_000),
        Row(5567, "b", "gone", 9, 0.0, None, 2.0, 0, 0, 0, reason="timeout"),
    ]
    lines = format_table(rows).splitlines()
    assert lines[0].split() == ["port", "server", "state", "frames", "fps", "latency", "ms", "age", "s",
                                "dropped", "rejected", "MB"]
    assert lines[1].split() == ["5566", "a", "alive", "40", "30.0", "4.0", "0.1", "2", "3", "3.0"]
    assert lines[2].split() == ["5567", "b", "gone", "(timeout)", "9", "0.0", "-", "2.0", "0", "0", "0.0"]
    assert lines[0].index("fps") + 3 == lines[1].index("30.0") + 4  # numbers are right-aligned
    assert lines[0].index("server") == lines[1].index(" a ") + 1  # names are left-aligned


def test_plain_view_prints_blocks_and_rich_view_draws_a_table():
    out = io.StringIO()
    view = StatsView(out, interval=60, use_rich=False)
    assert view.due()
    view.update([Row(5566, "a", "alive", 1, 1.0, None, None, 0, 0, 0)], "1 frames")
    assert not view.due()
    view.close()
    assert out.getvalue().splitlines()[0] == "1 frames" and out.getvalue().endswith("\n\n")
    if not rich_available():
        pytest.skip("rich is not installed")
    out = io.StringIO()
    view = StatsView(out, use_rich=True)
    view.update([Row(5566, "a", "alive", 1, 1.0, None, None, 0, 0, 0)], "1 frames")
    view.close()
    assert "5566" in out.getvalue() and "alive" in out.getvalue()
