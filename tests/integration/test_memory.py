"""``reuse_memory``: frame buffers are reused instead of faulted in afresh for every frame.

Each hub runs in a fresh interpreter (the malloc settings are process-wide and permanent)
and receives 640x480 frames from a server process, for a consumer that works on batches of
8 frames and then lets them all go; the hub process's minor page faults per frame are
compared with the option on and off. (With glibc's defaults, freeing a batch gives the
memory back to the kernel and the next frames fault it in again: 40-120 faults per frame
here. A consumer holding only the last 3 frames faulted 37-39 times per frame on the
development machine but hardly at all in one CI run, so the batch is what makes the
comparison hold everywhere.)
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the settings exist in glibc only"),
]

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = textwrap.dedent(
    """
    import json, resource, sys
    sys.path[:0] = [{tests!r}, {root!r}]
    from netgear import NetGear, memory
    from procs import same_frame_sender, start

    reuse = sys.argv[1] == "on"
    with NetGear(address="127.0.0.1", port=[0], receive_mode=True, multiserver_mode=True,
                 delivery="fifo", reuse_memory=reuse) as hub:
        proc = start(same_frame_sender, hub.ports[0], 1, 400)
        held = []
        for i in range(400):
            packet = hub.recv_packet(timeout=30)
            assert packet is not None and packet.frame.shape == (480, 640, 3)
            held.append(packet)  # a consumer that works on batches of frames
            if len(held) == 8:
                held.clear()
            if i == 99:
                before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        proc.join(30)
    print(json.dumps({{"faults_per_frame": (after - before) / 300, "applied": memory.applied()}}))
    """
)


def probe(mode: str, env: dict) -> dict:
    root = os.path.dirname(TESTS)
    code = PROBE.format(tests=TESTS, root=root)
    out = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, timeout=100, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}


def test_reused_buffers_cut_page_faults_per_frame():
    on, off = probe("on", clean_env()), probe("off", clean_env())
    assert on["applied"] and not off["applied"]
    # a 640x480x3 frame is 225 pages; reused buffers fault almost none of them
    assert on["faults_per_frame"] < 10, on
    assert off["faults_per_frame"] > 3 * on["faults_per_frame"], (on, off)


def test_the_environment_wins_over_the_option():
    env = {**clean_env(), "MALLOC_TRIM_THRESHOLD_": str(1 << 20)}
    assert probe("on", env)["applied"] is False
