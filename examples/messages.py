"""Custom messages with every frame: each camera host says who it is and what it sees.

Any msgpack value (dicts, lists, tuples, numpy arrays ...) travels with the frame; the hub
gets it as ``packet.message`` (or the middle item of ``recv()``'s tuple). Here each host
sends its name, the frame number and the mean brightness of the frame, and the hub prints
one line per frame and writes the latest message onto the montage tiles.

    python examples/messages.py --frames 5
"""

from __future__ import annotations

import argparse
import threading

from netgear import NetGear
from netgear.display import Display, Montage, write_image
from netgear.sources import Synthetic


def camera_host(port: int, name: str, frames: int) -> None:
    with NetGear(address="127.0.0.1", port=port, multiserver_mode=True, server_id=name) as server:
        for i, frame in enumerate(Synthetic((320, 240), fps=20, seed=port, label=name, frames=frames)):
            message = {"text": f"I'm {name}", "frame": i, "brightness": round(float(frame.mean()), 1)}
            server.send(frame, message=message)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60, help="frames per host")
    parser.add_argument("--snapshot", default="messages.png", help="written at the end without a display")
    args = parser.parse_args(argv)

    names = ["pi-kitchen", "pc-garage"]
    with NetGear(receive_mode=True, address="127.0.0.1", port=[0, 0], multiserver_mode=True) as hub:
        hosts = [threading.Thread(target=camera_host, args=(p, n, args.frames)) for p, n in zip(hub.ports, names)]
        for host in hosts:
            host.start()
        montage, display = Montage((320, 240), messages=True), Display()
        for packet in hub:  # ends when both hosts are gone
            print(f"{packet.port} {packet.server_id}: {packet.message}")
            montage.update(packet)
            display.show("messages", montage.render(hub.snapshot()))
        for host in hosts:
            host.join()
        display.close()
        write_image(args.snapshot, montage.render(hub.snapshot()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
