"""Does the JPEG codec release the GIL? Encode and decode one camera-like frame in one
thread, then in two threads of one process at once, with no sockets: if simplejpeg held
the GIL, two threads could not do more than one (at best 1.0 x); released, two threads on
two free cores approach 2 x.

    netgear bench --codec                     640x480 and 1920x1080
    netgear bench --codec --seconds 2 --json codec.json
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, List

from benchmarks.baseline import camera_frame

SHAPES = {"vga": (480, 640, 3), "hd": (1080, 1920, 3)}


def _rate(work: Callable[[], Any], threads: int, seconds: float) -> float:
    """Calls of ``work`` per second, by ``threads`` threads calling it in a loop together."""
    counts = [0] * threads
    go = threading.Barrier(threads + 1)
    stop = threading.Event()

    def loop(index: int) -> None:
        go.wait()
        while not stop.is_set():
            work()
            counts[index] += 1

    pool = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(threads)]
    for thread in pool:
        thread.start()
    go.wait()
    start = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in pool:
        thread.join()
    return sum(counts) / (time.perf_counter() - start)


def measure(name: str, seconds: float) -> List[Dict[str, Any]]:
    """One row each for encoding and decoding a frame of SHAPES[name], netgear's defaults."""
    from netgear import codecs

    shape = SHAPES[name]
    frame = camera_frame(shape, 0)
    settings = codecs.JpegSettings()
    data = codecs.encode_jpeg(frame, settings)
    jobs = {
        "encode": lambda: codecs.encode_jpeg(frame, settings),
        "decode": lambda: codecs.decode_jpeg(data, "BGR", shape, fastdct=settings.fastdct,
                                             fastupsample=settings.fastupsample),
    }
    rows = []
    for what, work in jobs.items():
        one = _rate(work, 1, seconds)
        two = _rate(work, 2, seconds)
        rows.append({"name": f"codec-{what}-{name}", "one_thread_fps": one, "two_threads_fps": two,
                     "speedup": two / one, "jpeg_bytes": len(data)})
    return rows


def main(seconds: float = 1.0, json_path: Any = None) -> int:
    import json

    rows: List[Dict[str, Any]] = []
    for name in SHAPES:
        for row in measure(name, seconds):
            rows.append(row)
            print(f"{row['name']:<20} one thread {row['one_thread_fps']:7.1f} fps   two threads "
                  f"{row['two_threads_fps']:7.1f} fps   {row['speedup']:.2f} x", flush=True)
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0
