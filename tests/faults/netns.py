"""A camera host on a network of its own, and a switch that partitions it from the hub.

:class:`VethNamespace` makes a network namespace joined to the test's namespace by a veth
pair with a private /30 (``10.123.46.x``, picked free per run; tests/security uses
10.123.45.0/30), with interface and namespace names unique per pid, so engineers running
the suite side by side do not collide. :meth:`VethNamespace.cut` partitions the two ends
with a blackhole route on each side, scoped to the peer's single address (/32): inside the
namespace to the hub's address, in the test's namespace to the servers' address; every
other address keeps working. Established connections are cut too: their packets are
dropped and no RST is sent, as with a pulled cable (checked: during a 5 s cut nothing
crosses and the hub reports its servers gone by timeout). The servers' own connect()
attempts fail at once (a blackhole route answers EINVAL locally), so they retry on
libzmq's reconnect schedule. :meth:`heal` removes both routes; ``close()`` (the fixture's
teardown) always heals first, because the host-side route is not attached to the veth and
would outlive it.

:func:`start_server` runs a streaming server (``python -c SERVER``) in the namespace
(``ip netns exec``) or, with ``ns=None``, in the test's namespace: a separate process that
paces its frames at ``fps`` and skips the slots it missed (a camera does not make up for
lost time), so the hub's frame count measures what really got through. Each frame carries
``{"i": index}``; closing the process's stdin makes it ``close()`` and exit
(:func:`stop_servers`, e.g. ``gears.callback(stop_servers, started)``), and so does the
death of the test process, whatever kills it.

A run killed before its teardown leaves its namespace behind; the next run removes those
of dead processes (:func:`remove_leftovers`).
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

from benchmarks.netns import shape_command, veth_setup

ROOT = Path(__file__).resolve().parents[2]
#: the /30 subnets of this /24 are handed out, one per namespace, first free from pid % 64
POOL = ipaddress.ip_network("10.123.46.0/24")

SERVER = r"""
import ast, sys, threading, time
import numpy as np
from netgear import NetGear
address, port, pattern, fps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
options = ast.literal_eval(sys.argv[5])
shape = ast.literal_eval(sys.argv[6])
stop = threading.Event()
def watch_stdin():
    sys.stdin.read()
    stop.set()
threading.Thread(target=watch_stdin, daemon=True).start()
frame = np.zeros(shape, np.uint8)
period = 1.0 / fps
with NetGear(address=address, port=port, pattern=pattern, multiserver_mode=True, **options) as gear:
    i = 0
    next_at = time.monotonic()
    while not stop.is_set():
        try:
            gear.send(frame, message={"i": i})
        except Exception:
            pass
        i += 1
        next_at = max(next_at + period, time.monotonic())
        stop.wait(max(0.0, next_at - time.monotonic()))
"""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if check and done.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def _used_addresses() -> set:
    out = ip("-o", "-4", "addr", "show", check=False).stdout + ip("-4", "route", "show", check=False).stdout
    return {word.split("/")[0] for line in out.splitlines() for word in line.split()}


def remove_leftovers(tag: str) -> None:
    """Delete the namespaces, veth pairs and host routes of runs whose process is dead (a
    run killed before its teardown). Only names this module makes: ``<tag><pid>``."""
    for line in ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        pid = name[len(tag):]
        if not (name.startswith(tag) and pid.isdigit()) or os.path.exists(f"/proc/{pid}"):
            continue
        host_if = f"{tag}h{int(pid) % 1000000}"
        addrs = ip("-o", "-4", "addr", "show", "dev", host_if, check=False).stdout.split()
        if "inet" in addrs:
            net = ipaddress.ip_interface(addrs[addrs.index("inet") + 1]).network
            if net.subnet_of(POOL):
                ip("route", "del", "blackhole", f"{net[2]}/32", check=False)
        ip("link", "del", host_if, check=False)
        ip("netns", "del", name, check=False)


class VethNamespace:
    """A namespace ``name`` reached over a veth pair: ``hub_ip`` here, ``server_ip`` there."""

    def __init__(self, tag: str = "ngf") -> None:
        pid = os.getpid()
        self.tag = tag
        self.name = f"{tag}{pid}"
        self.host_if = f"{tag}h{pid % 1000000}"  # at most 15 characters (IFNAMSIZ)
        self.ns_if = f"{tag}n{pid % 1000000}"
        subnets = list(POOL.subnets(new_prefix=30))
        used = _used_addresses()
        start = pid % len(subnets)
        for k in range(len(subnets)):
            net = subnets[(start + k) % len(subnets)]
            hosts = [str(h) for h in net.hosts()]
            if not used.intersection([str(a) for a in net]):
                self.hub_ip, self.server_ip = hosts
                break
        else:  # pragma: no cover
            raise AssertionError(f"no free /30 left in {POOL}")
        self.is_cut = False
        self._opened = False

    def open(self) -> "VethNamespace":
        remove_leftovers(self.tag)
        made = ip("netns", "add", self.name, check=False)
        if made.returncode != 0:
            pytest.skip(f"cannot create a network namespace here (`ip netns add` failed: {made.stderr.strip()})")
        self._opened = True
        for args in veth_setup(self.name, self.host_if, self.ns_if, self.hub_ip, self.server_ip):
            ip(*args)
        return self

    def limit(self, mbit: float) -> None:
        """Make the link from the namespace to the hub a ``mbit`` Mbit/s one (a token bucket
        on the namespace's end of the veth pair, with 50 ms of queue: a congested Wi-Fi
        uplink). The way back stays fast."""
        done = subprocess.run(shape_command(self.name, self.ns_if, mbit), capture_output=True, text=True, timeout=10)
        if done.returncode != 0:
            pytest.skip(f"cannot shape a link here (`tc qdisc ... tbf` failed: {done.stderr.strip()})")

    # -- the partition -----------------------------------------------------------------
    def cut(self) -> None:
        """Drop every packet between the two ends, both ways, established connections too."""
        assert not self.is_cut
        self.is_cut = True  # set first: close() must remove a half-made cut
        ip("-n", self.name, "route", "add", "blackhole", f"{self.hub_ip}/32")
        ip("route", "add", "blackhole", f"{self.server_ip}/32")

    def heal(self) -> None:
        """Remove both blackhole routes (idempotent)."""
        if not self.is_cut:
            return
        ip("route", "del", "blackhole", f"{self.server_ip}/32", check=False)
        if self._opened:
            ip("-n", self.name, "route", "del", "blackhole", f"{self.hub_ip}/32", check=False)
        self.is_cut = False

    def close(self) -> None:
        try:
            self.heal()
        finally:
            # never leave the host route behind, whatever state cut() was left in
            ip("route", "del", "blackhole", f"{self.server_ip}/32", check=False)
            if self._opened:
                ip("link", "del", self.host_if, check=False)  # deletes its peer too
                ip("netns", "del", self.name, check=False)
                self._opened = False

    def __enter__(self) -> "VethNamespace":
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()


@pytest.fixture
def veth_ns():
    """A :class:`VethNamespace`, healed and deleted at teardown (``from netns import veth_ns``
    in a test module; or ``gears.enter_context(VethNamespace())``)."""
    with VethNamespace() as ns:
        yield ns


# -- server processes --------------------------------------------------------------------


def start_server(
    address: str,
    port: int,
    pattern: int,
    *,
    fps: float = 30.0,
    ns: Optional[VethNamespace] = None,
    options: Optional[Dict[str, Any]] = None,
    shape: Tuple[int, ...] = (24, 32, 3),
) -> subprocess.Popen:
    """A streaming server process connecting to ``address:port`` (in ``ns`` if given),
    sending raw frames of ``shape``."""
    argv = [sys.executable, "-c", SERVER, address, str(port), str(pattern), str(fps), repr(options or {}),
            repr(tuple(shape))]
    if ns is not None:
        argv = ["ip", "netns", "exec", ns.name, *argv]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(argv, env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def stop_servers(servers: List[subprocess.Popen], timeout: float = 5.0) -> None:
    """Ask each server to close (stdin closed), kill those still running after ``timeout``."""
    for proc in servers:
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
    deadline = time.monotonic() + timeout
    for proc in servers:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


