"""One window per camera host, named after the host (imagezmq's hub; a per-client window).

The hub shows each host's frames in its own window, titled with the host's name; a host
that leaves gets its window closed. Without a display, the last frame of every host is
written to --out instead. ``netgear receive --windows`` does the same from the command line.

    python examples/window_per_host.py --hosts 3 --seconds 3 --out frames/
"""

from __future__ import annotations

import argparse
import os
import threading

import cv2

from netgear import NetGear
from netgear.display import Display, write_image
from netgear.sources import Synthetic


def camera_host(port: int, name: str, seconds: float) -> None:
    with NetGear(address="127.0.0.1", port=port, multiserver_mode=True, server_id=name) as server:
        for frame in Synthetic((320, 240), fps=20, seed=port, label=name, frames=int(seconds * 20)):
            server.send(frame)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--out", default="frames", help="folder for the last frame of each host")
    args = parser.parse_args(argv)

    with NetGear(receive_mode=True, address="127.0.0.1", port=[0] * args.hosts, multiserver_mode=True) as hub:
        hosts = [threading.Thread(target=camera_host, args=(p, f"camera-{i + 1}", args.seconds))
                 for i, p in enumerate(hub.ports)]
        for host in hosts:
            host.start()
        last = {}
        with Display() as display:
            for packet in hub:
                last[packet.server_id] = packet.frame
                if not display.show(packet.server_id, packet.frame):  # one window per host name
                    break
                for event in hub.pop_events():
                    if event.kind == "left" and display.enabled:
                        cv2.destroyWindow(event.server_id)
        for host in hosts:
            host.join()
    os.makedirs(args.out, exist_ok=True)
    for name, frame in sorted(last.items()):
        print(f"{name}: last frame written to {write_image(os.path.join(args.out, name + '.png'), frame)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
