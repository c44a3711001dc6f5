"""Ironhouse across hosts: servers in a network namespace of their own reach the hub over
a veth pair (10.123.45.0/30, private to this test), as a camera host on the LAN would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.netns import veth_setup

from helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
HUB_IP, SERVER_IP = "10.123.45.1", "10.123.45.2"

SERVER = """
import sys, time
import numpy as np
from netgear import NetGear
port, options = int(sys.argv[1]), eval(sys.argv[2])
with NetGear(address=%r, port=port, pattern=1, multiserver_mode=True, request_timeout=0.5, max_retries=0, **options) as gear:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            gear.send(np.zeros((24, 32, 3), np.uint8), message={"from": options.get("server_id")})
        except Exception:
            pass
        time.sleep(0.02)
""" % HUB_IP


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)


@pytest.fixture
def netns():
    name = f"ngsec{os.getpid()}"
    host_if, ns_if = f"ngh{os.getpid() % 100000}", f"ngn{os.getpid() % 100000}"
    made = _ip("netns", "add", name)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace here (`ip netns add` failed: {made.stderr.strip()})")
    try:
        for args in veth_setup(name, host_if, ns_if, HUB_IP, SERVER_IP):
            done = _ip(*args)
            assert done.returncode == 0, f"ip {' '.join(args)}: {done.stderr}"
        yield name
    finally:
        _ip("link", "del", host_if)  # deletes its peer too
        _ip("netns", "del", name)


def test_ironhouse_across_a_veth_pair(gears, netns, keydir):
    from netgear import NetGear

    hub = gears.enter_context(NetGear(address=HUB_IP, port=[0], pattern=1, receive_mode=True, multiserver_mode=True,
                                      delivery="latest", secure_mode=2, custom_cert_location=str(keydir)))
    port = hub.ports[0]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    children = []
    try:
        for options in (
            {"server_id": "cam1-claims", "secure_mode": 2, "custom_cert_location": str(keydir), "key_name": "cam1"},
            {"server_id": "plain"},
            {"server_id": "rogue", "secure_mode": 2, "custom_cert_location": str(keydir), "key_name": "rogue"},
        ):
            children.append(subprocess.Popen(
                ["ip", "netns", "exec", netns, sys.executable, "-c", SERVER, str(port), repr(options)],
                env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            ))
        wait_until(lambda: sum(s.frames for s in hub.snapshot().servers if s.server_id == "cam1") >= 20, 20,
                   "frames from cam1 over the veth pair")
        packet = hub.recv_packet(timeout=5)
        assert packet.server_id == "cam1" and packet.message == {"from": "cam1-claims"}
        time.sleep(0.5)
        assert {s.server_id for s in hub.snapshot().servers} == {"cam1"}
        assert all(not p.rejected for p in hub.snapshot().ports)
    finally:
        for child in children:
            child.kill()
            child.wait(5)
