"""The topic filter: three hosts publish (PUB/SUB), the hub only takes the "gate" camera.

Each host publishes under a topic (``topic=``; by default its port). A hub with
``filter=`` delivers only the matching servers; under PUB/SUB the filter is a ZeroMQ
subscription, so the other frames never even reach the hub's Python code. The filtered
hosts are still tracked: the final table shows them alive, with no frames.

    python examples/topic_filter.py --seconds 2
"""

from __future__ import annotations

import argparse
import threading

from netgear import NetGear
from netgear.sources import Synthetic


def camera_host(port: int, topic: str, stop: threading.Event) -> None:
    with NetGear(address="127.0.0.1", port=port, pattern=2, multiserver_mode=True, topic=topic,
                 server_id=f"cam-{topic}") as server:
        for frame in Synthetic((160, 120), fps=30, label=topic):
            if stop.is_set():
                break
            server.send(frame, message=topic)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--filter", default="gate", help="topic (or port) to receive")
    args = parser.parse_args(argv)

    topics = ["door", "gate", "yard"]
    stop = threading.Event()
    with NetGear(receive_mode=True, address="127.0.0.1", port=[0, 0, 0], pattern=2,
                 multiserver_mode=True, filter=args.filter) as hub:
        hosts = [threading.Thread(target=camera_host, args=(p, t, stop)) for p, t in zip(hub.ports, topics)]
        for host in hosts:
            host.start()
        received = {}
        timer = threading.Timer(args.seconds, stop.set)
        timer.start()
        for packet in hub:  # ends once the hosts have left
            received[packet.topic] = received.get(packet.topic, 0) + 1
        timer.cancel()
        for host in hosts:
            host.join()
        print("frames by topic:", dict(sorted(received.items())))
        for s in hub.snapshot().servers:
            print(f"  {s.port} {s.server_id} topic={s.topic} {s.state}: {s.frames} frames delivered")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
