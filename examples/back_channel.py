"""Back channel: the hub finds the moving object in each host's frames and sends the box back.

Every camera host sends frames over REQ/REP with ``bidirectional_mode=True``. The hub runs
a small motion detector per host (median background of recent frames, difference,
largest blob) and answers each frame with ``packet.reply({"box": [x, y, w, h], "ttl": s})``.
That answer is the return value of exactly that host's ``send()`` for exactly that frame.
The host draws the box on its own view and drops it ``ttl`` seconds after the last answer
that carried one, so boxes vanish by themselves when the hub stops sending them (here:
after --quiet-after seconds).

    python examples/back_channel.py --seconds 6 --quiet-after 4 --out views/
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import cv2
import numpy as np

from netgear import NetGear
from netgear.display import Display, write_image
from netgear.sources import Synthetic

Box = Tuple[int, int, int, int]


class MotionFinder:
    """Bounding box of the biggest moving thing: difference to a median background."""

    def __init__(self, history: int = 9, every: int = 3, threshold: int = 40, min_area: int = 50) -> None:
        self.history, self.every, self.threshold, self.min_area = history, every, threshold, min_area
        self.samples: List[np.ndarray] = []
        self.count = 0

    def find(self, frame: np.ndarray) -> Optional[Box]:
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        if self.count % self.every == 0:  # samples spread over time: a moving object leaves the median
            self.samples = (self.samples + [gray])[-self.history:]
        self.count += 1
        if len(self.samples) < self.history:
            return None
        background = np.median(np.stack(self.samples), axis=0).astype(np.uint8)
        mask = (cv2.absdiff(gray, background) > self.threshold).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        biggest = max(contours, key=cv2.contourArea, default=None)
        if biggest is None or cv2.contourArea(biggest) < self.min_area:
            return None
        return tuple(int(v) for v in cv2.boundingRect(biggest))  # type: ignore[return-value]


def analyse(hub: NetGear, ttl: float = 0.3, quiet_after: Optional[float] = None) -> int:
    """The image-processing hub: answer every frame with the box found in it (or nothing)."""
    finders = {}
    stop_at = None if quiet_after is None else time.monotonic() + quiet_after
    answered = 0
    for packet in hub:  # ends when every host is gone
        finder = finders.setdefault((packet.port, packet.server_id), MotionFinder())
        box = finder.find(packet.frame)
        if box is not None and (stop_at is None or time.monotonic() < stop_at):
            packet.reply({"box": list(box), "ttl": ttl})  # goes to this host's send(), for this frame
            answered += 1
        # frames not answered explicitly are answered with None when the next one is taken
    return answered


@dataclass
class HostLog:
    """What one host saw: per frame, its index, the time, the box received and the box drawn."""

    name: str
    seed: int
    received: List[Tuple[int, float, Box]] = field(default_factory=list)
    drawn: List[Tuple[int, float, Optional[Box]]] = field(default_factory=list)
    view: Optional[np.ndarray] = None


def camera_host(port: int, name: str, seed: int, frames: int, fps: float = 50.0,
                display: Optional[Display] = None) -> HostLog:
    """A host: send frames, take the boxes the hub answers with, draw them until they expire."""
    log = HostLog(name, seed)
    box: Optional[Box] = None
    expires = 0.0
    with NetGear(address="127.0.0.1", port=port, pattern=1, multiserver_mode=True,
                 bidirectional_mode=True, server_id=name) as server:
        for i, frame in enumerate(Synthetic((320, 240), fps=fps, seed=seed, label=name, frames=frames)):
            answer = server.send(frame)  # the hub's reply to this very frame
            now = time.monotonic()
            if isinstance(answer, dict) and "box" in answer:
                box, expires = tuple(answer["box"]), now + float(answer["ttl"])
                log.received.append((i, now, box))
            shown = box if box is not None and now < expires else None
            view = frame.copy()
            if shown is not None:
                x, y, w, h = shown
                cv2.rectangle(view, (x, y), (x + w - 1, y + h - 1), (0, 0, 255), 2)
            log.drawn.append((i, now, shown))
            log.view = view
            if display is not None:
                display.show(name, view)
    return log


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=6.0, help="how long each host streams")
    parser.add_argument("--quiet-after", type=float, default=4.0, help="the hub stops answering after S seconds")
    parser.add_argument("--ttl", type=float, default=0.3, help="seconds a box stays without a new answer")
    parser.add_argument("--out", default="views", help="folder for each host's last view (no display)")
    args = parser.parse_args(argv)

    logs: List[HostLog] = []
    display = Display()  # OpenCV windows belong to one thread: the hosts only draw when there is one host
    with NetGear(receive_mode=True, address="127.0.0.1", port=[0] * args.hosts, multiserver_mode=True,
                 pattern=1, bidirectional_mode=True) as hub:
        def host(i: int, port: int) -> None:
            logs.append(camera_host(port, f"host-{i + 1}", i, int(args.seconds * 50),
                                    display=display if args.hosts == 1 else None))

        threads = [threading.Thread(target=host, args=(i, p)) for i, p in enumerate(hub.ports)]
        for t in threads:
            t.start()
        answered = analyse(hub, args.ttl, args.quiet_after)
        for t in threads:
            t.join()
    display.close()
    os.makedirs(args.out, exist_ok=True)
    print(f"hub answered {answered} frames with a box")
    for log in sorted(logs, key=lambda h: h.name):
        last = log.received[-1][0] if log.received else None
        cleared = next((i for i, _, b in log.drawn if last is not None and i > last and b is None), None)
        path = write_image(os.path.join(args.out, f"{log.name}.png"), log.view)
        print(f"{log.name}: {len(log.received)} boxes received, last on frame {last}, "
              f"gone from the view on frame {cleared}; last view: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
