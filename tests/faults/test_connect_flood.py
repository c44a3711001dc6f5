"""A connect/close flood against a hub port while good servers stream.

An attacker process opens and closes plain TCP connections (``socket.create_connection``
then ``close``, nothing sent) to one hub port, paced at 1000 per second for 10 s, and
reports how many succeeded; 3 good servers (separate processes, 30 fps, one of them on
the attacked port) stream meanwhile. REQ/REP and PUB/SUB. The test checks:
- the attacker really achieved >= 900 connections per second over its 10 s;
- each good server delivered >= 95 % of its 30 fps over the flood window;
- the hub process's open file descriptors are back to their pre-flood count within 5 s
  after the flood stops.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from helpers import LOCAL, open_hub
from history import History, open_fds
from netns import start_server, stop_servers

pytestmark = pytest.mark.timeout(60)

FPS = 30.0
RATE = 1000.0
FLOOD_FOR = 10.0
MIN_RATE = 900.0
KEEP = 0.95
FD_SETTLE = 5.0

#: connect + close at ``rate`` per second (paced, catching up when late) for ``seconds``;
#: prints one JSON line: successes, failures and the monotonic start and end (the
#: monotonic clock is system-wide, so the test compares it with its own).
FLOOD = r"""
import json, socket, sys, time
host, port, seconds, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
ok = failed = 0
start = next_at = time.monotonic()
while True:
    now = time.monotonic()
    if now - start >= seconds:
        break
    if next_at > now:
        time.sleep(next_at - now)
    next_at += 1.0 / rate
    try:
        socket.create_connection((host, port), timeout=2).close()
        ok += 1
    except OSError:
        failed += 1
print(json.dumps({"ok": ok, "failed": failed, "start": start, "end": time.monotonic()}), flush=True)
"""


@pytest.mark.parametrize("pattern", [1, 2])
def test_connect_flood_1000_per_s_for_10s_good_servers_keep_95_percent(gears, pattern):
    servers = []
    gears.callback(stop_servers, servers)
    hub = open_hub(gears, [0, 0, 0], pattern)
    attacked = hub.ports[0]
    for port in hub.ports:
        servers.append(start_server(LOCAL, port, pattern, fps=FPS))
    history = History(hub)
    history.run(lambda: all(history.count(p) >= 5 for p in hub.ports), 20, "frames from the 3 servers")

    fds_before = open_fds()
    peak = [fds_before]

    def flooding() -> bool:
        peak[0] = max(peak[0], open_fds())
        return flood.poll() is not None

    flood = subprocess.Popen([sys.executable, "-c", FLOOD, LOCAL, str(attacked), str(FLOOD_FOR), str(RATE)],
                             stdout=subprocess.PIPE, text=True)
    try:
        history.run(flooding, FLOOD_FOR + 10, "the end of the flood")
    finally:
        if flood.poll() is None:
            flood.kill()
        out = flood.communicate(timeout=5)[0]
    tally = json.loads(out)
    start, end = tally["start"], tally["end"]
    history.run(lambda: open_fds() == fds_before or time.monotonic() > end + FD_SETTLE, FD_SETTLE + 5,
                "descriptors settling")
    fds_after, settled_after = open_fds(), time.monotonic() - end

    window = end - start
    rate = tally["ok"] / window
    counts = {p: sum(1 for s in history.frames[p] if start <= s.at <= end) for p in hub.ports}
    kept = {p: counts[p] / (FPS * window) for p in hub.ports}
    print(f"flood: {tally['ok']} connections ({tally['failed']} failed) in {window:.2f}s = {rate:.0f}/s on port "
          f"{attacked}; delivered {', '.join(f'{p}: {100 * k:.1f} %' for p, k in kept.items())} of {FPS:g} fps; "
          f"fds {fds_before} -> peak {peak[0]} -> {fds_after} ({settled_after:.2f}s after the flood)")

    assert rate >= MIN_RATE, f"the attacker managed only {rate:.0f} connections per second"
    for port in hub.ports:
        assert kept[port] >= KEEP, f"port {port}: {counts[port]} frames in {window:.2f}s ({100 * kept[port]:.1f} %)"
    assert fds_after == fds_before, f"open descriptors {fds_after} {FD_SETTLE:g}s after the flood, {fds_before} before"
    assert not [e for e in history.events if e.kind == "left"], "a good server was reported gone"
