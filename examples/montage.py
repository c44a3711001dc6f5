"""Several camera hosts, one hub, one montage: vidgear's multi-server example, camera-free.

Two servers (threads here; separate machines in real life) stream the synthetic pattern to
one hub, which keeps the newest frame per port and tiles them with imutils.build_montages,
as vidgear users know it. With a display the montage is shown (q quits); without one it is
written to --snapshot.

    python examples/montage.py                       # 2 servers, 5 s
    python examples/montage.py --servers 4 --seconds 10 --snapshot wall.png
"""

from __future__ import annotations

import argparse
import threading

import cv2
from imutils import build_montages

from netgear import NetGear
from netgear.display import Display, montage_grid, write_image
from netgear.sources import Synthetic


def camera_host(port: int, seconds: float, seed: int, stop: threading.Event) -> None:
    """One camera host: what runs on each machine (with a real camera: netgear.sources.Camera)."""
    server = NetGear(address="127.0.0.1", port=port, pattern=1, multiserver_mode=True)
    for frame in Synthetic((320, 240), fps=30, seed=seed, frames=int(seconds * 30)):
        if stop.is_set():
            break
        server.send(frame)
    server.close()  # the hub sees this server leave at once


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--snapshot", default="montage.png", help="written at the end without a display")
    args = parser.parse_args(argv)

    client = NetGear(receive_mode=True, address="127.0.0.1", port=[0] * args.servers, multiserver_mode=True)
    stop = threading.Event()
    hosts = [threading.Thread(target=camera_host, args=(port, args.seconds, i, stop)) for i, port in enumerate(client.ports)]
    for host in hosts:
        host.start()

    frame_dict = {}  # newest frame per port
    display = Display()
    montage = None
    while True:
        data = client.recv()
        if data is None:  # every server is gone
            break
        port, frame = data[0], data[-1]
        cv2.putText(frame, f"port {port}", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
        frame_dict[port] = frame
        tiles = [frame_dict[p] for p in sorted(frame_dict)]  # stable order: by port
        montage = build_montages(tiles, (320, 240), montage_grid(len(tiles)))[0]
        if not display.show("montage", montage):
            break
    stop.set()
    display.close()
    client.close()
    for host in hosts:
        host.join()
    if montage is not None:
        write_image(args.snapshot, montage)
        print(f"montage of {len(frame_dict)} servers written to {args.snapshot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
