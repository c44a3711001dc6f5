"""A PUB/SUB camera on a link slower than its stream: how old are the frames that arrive?

One server in a network namespace sends camera-like 640x480 JPEG frames (about 120 KB) at
30 fps, about 29 Mbit/s, to a hub on the other end of a veth pair whose outbound side is
shaped to ``--mbit`` (default 20) Mbit/s by a token bucket with 50 ms of queue: a congested
Wi-Fi uplink. Part of the frames cannot get through; what matters is their age on arrival.
Each configuration runs in turn in the same invocation, the server's defaults first, then
the previous defaults (a 16-frame queue and the kernel's autotuned send buffer):

    sudo python -m benchmarks.slow_link              # needs root: ip netns, tc
    sudo python -m benchmarks.slow_link --mbit 10 --seconds 10

Printed per configuration: frames delivered per second, and the age of delivered frames
(hub's receive time minus the sender's time stamp; both ends share the machine's clock),
p50 and p99, measured after a 3 s warm-up.
"""

from __future__ import annotations

import argparse
import ast
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

import numpy as np

from benchmarks.netns import shape_command, veth_setup

CONFIGS = [("defaults", {}), ("previous defaults", {"send_hwm": 16, "send_buffer": 0})]
HUB_IP, SERVER_IP = "10.123.47.1", "10.123.47.2"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def serve(port: int, options: Dict[str, Any], seconds: float, fps: float) -> None:
    """The camera (runs inside the namespace)."""
    from benchmarks.bench import _frame
    from netgear import NetGear

    frames = [_frame((480, 640, 3), i) for i in range(4)]
    with NetGear(address=HUB_IP, port=port, pattern=2, multiserver_mode=True, jpeg_compression=True,
                 **options) as gear:
        start = time.monotonic()
        sent = 0
        while time.monotonic() - start < seconds:
            delay = start + sent / fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            gear.send(frames[sent % len(frames)])
            sent += 1


def measure(name: str, options: Dict[str, Any], seconds: float, warmup: float) -> Dict[str, Any]:
    from netgear import NetGear

    with NetGear(address=HUB_IP, port=[0], pattern=2, receive_mode=True, multiserver_mode=True,
                 delivery="fifo") as hub:
        argv = ["ip", "netns", "exec", NAME, sys.executable, "-m", "benchmarks.slow_link", "--serve",
                str(hub.ports[0]), repr(options), str(warmup + seconds + 1), "30"]
        server = subprocess.Popen(argv, env=dict(os.environ, PYTHONPATH=os.getcwd()))
        try:
            hub.recv_packet(timeout=30)
            start = time.monotonic()
            ages: List[float] = []
            while time.monotonic() - start < warmup + seconds:
                try:
                    packet = hub.recv_packet(timeout=5)
                except TimeoutError:
                    break
                if packet is None:
                    break
                if time.monotonic() - start >= warmup:
                    ages.append((time.time() - packet.sent_at) * 1000)
        finally:
            server.wait(30)
    return {"config": name, "options": options, "fps": len(ages) / seconds,
            "age_p50_ms": float(np.percentile(ages, 50)), "age_p99_ms": float(np.percentile(ages, 99))}


NAME = f"ngsl{os.getpid()}"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mbit", type=float, default=20.0, help="link rate, Mbit/s")
    parser.add_argument("--seconds", type=float, default=6.0, help="measurement window per configuration")
    parser.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        port, options, seconds, fps = args.serve
        serve(int(port), ast.literal_eval(options), float(seconds), float(fps))
        return 0
    if os.geteuid() != 0:
        print("needs root (ip netns, tc)", file=sys.stderr)
        return 2
    host_if, ns_if = f"ngslh{os.getpid() % 100000}", f"ngsln{os.getpid() % 100000}"
    try:
        _ip("netns", "add", NAME)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"cannot make a network namespace (ip netns add): {exc}", file=sys.stderr)
        return 2
    try:
        for step in veth_setup(NAME, host_if, ns_if, HUB_IP, SERVER_IP):
            _ip(*step)
        shaped = subprocess.run(shape_command(NAME, ns_if, args.mbit), capture_output=True, text=True, timeout=10)
        if shaped.returncode != 0:
            print(f"cannot shape the link (tc qdisc ... tbf): {shaped.stderr.strip()}", file=sys.stderr)
            return 2
        print(f"PUB/SUB, 640x480 JPEG at 30 fps over a {args.mbit:g} Mbit/s link")
        for name, options in CONFIGS:
            r = measure(name, options, args.seconds, 3.0)
            print(f"  {name:<18} {str(options):<36} fps={r['fps']:5.1f} age p50={r['age_p50_ms']:5.0f} ms "
                  f"p99={r['age_p99_ms']:5.0f} ms", flush=True)
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", NAME], capture_output=True, timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
