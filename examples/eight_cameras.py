"""Eight camera hosts into one hub, one tile per host (imagezmq's 8 Raspberry Pi wall).

Each host has its own port and a name (``server_id``, like imagezmq's hostname); the hub
tiles them 4 x 2, labelled with port, name, rate and state. A host that stops is shown
as gone or closed instead of freezing silently. The servers run as separate processes,
as they would on separate machines.

    python examples/eight_cameras.py --seconds 5 --snapshot wall.png
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

from netgear import NetGear
from netgear.display import Display, Montage, write_image
from netgear.sources import Synthetic


def camera_host(port: int, name: str, seconds: float, seed: int) -> None:
    with NetGear(address="127.0.0.1", port=port, multiserver_mode=True, server_id=name) as server:
        deadline = time.monotonic() + seconds
        for frame in Synthetic((320, 240), fps=15, seed=seed, label=name):
            if time.monotonic() >= deadline:
                break
            server.send(frame)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--snapshot", default="wall.png", help="the wall as an image, written at the end")
    args = parser.parse_args(argv)

    ctx = mp.get_context("spawn")
    with NetGear(receive_mode=True, address="127.0.0.1", port=[0] * args.hosts, multiserver_mode=True) as hub:
        hosts = [ctx.Process(target=camera_host, args=(port, f"rpi-{i + 1}", args.seconds, i))
                 for i, port in enumerate(hub.ports)]
        for host in hosts:
            host.start()
        wall, display = Montage((320, 240), columns=4), Display()
        last_shown = 0.0
        for packet in hub:  # ends when every host is gone
            wall.update(packet)
            if time.monotonic() - last_shown > 1 / 30:  # redraw at most 30 times a second
                last_shown = time.monotonic()
                if not display.show("camera wall", wall.render(hub.snapshot())):
                    break
        display.close()
        write_image(args.snapshot, wall.render(hub.snapshot()))
        for host in hosts:
            host.join(10)
        print(f"{len(wall.tiles)} hosts, {sum(t.frames for t in wall.tiles.values())} frames; wall: {args.snapshot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
