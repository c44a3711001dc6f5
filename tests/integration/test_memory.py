"""``reuse_memory``: frame buffers are reused instead of faulted in afresh for every frame.

Each hub runs in a fresh interpreter (the malloc settings are process-wide and permanent)
and receives 640x480 frames from a server process, for a consumer that works on batches of
8 frames and then lets them all go; the hub process's minor page faults per frame are
counted.

The reference is a hub whose allocator is told, through glibc's own environment variables,
to map every frame afresh and unmap it when freed: each frame then faults its 225 pages in,
whatever the machine. That shows the probe sees the faults the option exists to avoid. The
comparison with glibc's *defaults* is not asserted, because it depends on the machine: 40-120
faults per frame on the development machine, 0.01 in one CI run (the numbers are in
docs/performance.md).
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


#: glibc's knobs for an allocator that maps every frame-sized block afresh and unmaps it on free
EVERY_FRAME_MAPPED = {"MALLOC_MMAP_THRESHOLD_": str(128 << 10), "MALLOC_TRIM_THRESHOLD_": str(128 << 10)}


def test_reused_buffers_cut_page_faults_per_frame():
    on = probe("on", clean_env())
    mapped = probe("off", {**clean_env(), **EVERY_FRAME_MAPPED})
    assert on["applied"] and not mapped["applied"]
    # a 640x480x3 frame is 225 pages: the probe sees them faulted in when buffers are not
    # reused, and reused buffers fault almost none of them
    assert mapped["faults_per_frame"] > 100, mapped
    assert on["faults_per_frame"] < 10, on


def test_the_environment_wins_over_the_option():
    env = {**clean_env(), "MALLOC_TRIM_THRESHOLD_": str(1 << 20)}
    assert probe("on", env)["applied"] is False
