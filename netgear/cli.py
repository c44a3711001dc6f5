"""The ``netgear`` command: ``demo``, ``serve`` and ``receive``.

Exit codes: 0 normal end, 1 runtime error, 2 usage error, 130 interrupted (Ctrl+C).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import signal
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, TextIO

from . import __version__
from .errors import NetGearError
from .gear import NetGear
from .sources import synthetic
from .stats import HubSnapshot

__all__ = ["main"]

_PATTERNS = {"reqrep": 1, "pubsub": 2}

EPILOG = """examples:
  netgear demo                                  3 synthetic servers into one hub, 5 s
  netgear demo --servers 8 --pattern pubsub --seconds 10
  netgear receive --ports 5566 5567             the hub (Ctrl+C or all servers gone to stop)
  netgear serve --address 192.168.1.10 --port 5566 --fps 15
"""


def _size(text: str) -> tuple:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}") from None
    return (w, h)


def _message(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--message must be JSON: {exc}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netgear",
        description="Gather video frames from many camera hosts into one hub over ZeroMQ.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"netgear {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="synthetic servers (separate processes) into one hub")
    demo.add_argument("--servers", type=int, default=3, help="number of servers (default 3)")
    demo.add_argument("--seconds", type=float, default=5.0, help="how long the servers stream (default 5)")
    demo.add_argument("--pattern", choices=_PATTERNS, default="reqrep")
    demo.add_argument("--size", type=_size, default=(320, 240), help="frame size (default 320x240)")
    demo.add_argument("--fps", type=float, default=30.0, help="frames per second per server (default 30)")

    serve = sub.add_parser("serve", help="a camera host sending synthetic frames to a hub")
    serve.add_argument("--address", default="127.0.0.1", help="the hub's address")
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--pattern", choices=_PATTERNS, default="reqrep")
    serve.add_argument("--size", type=_size, default=(640, 480))
    serve.add_argument("--fps", type=float, default=30.0)
    serve.add_argument("--frames", type=int, default=None, help="stop after N frames")
    serve.add_argument("--topic", default=None)
    serve.add_argument("--id", dest="server_id", default=None, help="server id (default host:pid)")
    serve.add_argument("--message", type=_message, default=None, help="JSON sent with every frame")

    recv = sub.add_parser("receive", help="the hub: receive from every server and print statistics")
    recv.add_argument("--ports", type=int, nargs="+", required=True)
    recv.add_argument("--address", default=None, help="interface to bind (default: all)")
    recv.add_argument("--pattern", choices=_PATTERNS, default="reqrep")
    recv.add_argument("--filter", nargs="+", default=None)
    recv.add_argument("--frames", type=int, default=None, help="stop after N frames")
    recv.add_argument("--timeout", type=float, default=None, help="give up after S seconds without frames")
    return parser


# -- output ------------------------------------------------------------------------------


def format_table(snap: HubSnapshot, rates: Dict[tuple, float]) -> str:
    """Per-server table: port, id, state, frames, fps, drops, rejected."""
    rows = [f"{'port':>6}  {'server':<24} {'state':<9} {'frames':>7} {'fps':>6} {'dropped':>7} {'rejected':>8}"]
    for s in snap.servers:
        rejected = sum(snap.rejected(s.port).values())
        fps = rates.get((s.port, s.server_id), 0.0)
        rows.append(
            f"{s.port:>6}  {(s.server_id or '-'):<24.24} {s.state:<9} {s.frames:>7} {fps:>6.1f} "
            f"{s.dropped:>7} {rejected:>8}"
        )
    return "\n".join(rows)


class _Rates:
    def __init__(self) -> None:
        self._last: Dict[tuple, tuple] = {}

    def update(self, snap: HubSnapshot) -> Dict[tuple, float]:
        now = time.monotonic()
        rates = {}
        for s in snap.servers:
            key = (s.port, s.server_id)
            prev = self._last.get(key)
            rates[key] = (s.frames - prev[1]) / max(1e-9, now - prev[0]) if prev else 0.0
            self._last[key] = (now, s.frames)
        return rates


# -- commands ----------------------------------------------------------------------------


def _serve_process(port: int, pattern: int, size: tuple, fps: float, seconds: float, seed: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    with NetGear(address="127.0.0.1", port=port, pattern=pattern, multiserver_mode=True) as server:
        deadline = time.monotonic() + seconds
        for frame in synthetic(size, fps, seed=seed):
            if time.monotonic() >= deadline:
                break
            server.send(frame, message={"seed": seed})


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    pattern = _PATTERNS[args.pattern]
    if not 1 <= args.servers <= 64:
        raise _Usage("--servers must be between 1 and 64")
    ctx = mp.get_context("spawn")
    with NetGear(
        address="127.0.0.1", port=[0] * args.servers, pattern=pattern, receive_mode=True, multiserver_mode=True
    ) as hub:
        procs = [
            ctx.Process(target=_serve_process, args=(p, pattern, args.size, args.fps, args.seconds, i), daemon=True)
            for i, p in enumerate(hub.ports)
        ]
        for proc in procs:
            proc.start()
        print(f"hub on ports {hub.ports}; {args.servers} synthetic servers for {args.seconds:g}s", file=out)
        try:
            _receive_loop(hub, out, frames=None, timeout=args.seconds + 30)
        finally:
            for proc in procs:
                proc.join(2)
                if proc.is_alive():
                    proc.kill()
    return 0


def cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    options: Dict[str, Any] = {"multiserver_mode": True}
    if args.topic:
        options["topic"] = args.topic
    if args.server_id:
        options["server_id"] = args.server_id
    with NetGear(address=args.address, port=args.port, pattern=_PATTERNS[args.pattern], **options) as server:
        print(f"serving {args.size[0]}x{args.size[1]} at {args.fps:g} fps to {args.address}:{args.port}", file=out)
        sent = 0
        for frame in synthetic(args.size, args.fps, frames=args.frames):
            server.send(frame, message=args.message)
            sent += 1
    print(f"sent {sent} frames", file=out)
    return 0


def cmd_receive(args: argparse.Namespace, out: TextIO) -> int:
    options: Dict[str, Any] = {"multiserver_mode": True}
    if args.filter:
        options["filter"] = args.filter
    with NetGear(
        address=args.address, port=args.ports, pattern=_PATTERNS[args.pattern], receive_mode=True, **options
    ) as hub:
        print(f"hub on ports {hub.ports}", file=out)
        _receive_loop(hub, out, frames=args.frames, timeout=args.timeout)
    return 0


def _receive_loop(hub: NetGear, out: TextIO, *, frames: Optional[int], timeout: Optional[float]) -> None:
    rates = _Rates()
    rates.update(hub.snapshot())
    next_report = time.monotonic() + 1.0
    count = 0
    while frames is None or count < frames:
        packet = hub.recv_packet(timeout=timeout)
        if packet is None:
            break
        count += 1
        if time.monotonic() >= next_report:
            snap = hub.snapshot()
            print(format_table(snap, rates.update(snap)) + "\n", file=out, flush=True)
            next_report += 1.0
    snap = hub.snapshot()
    print("final:\n" + format_table(snap, rates.update(snap)), file=out)
    print(f"received {count} frames; {'every server is gone' if snap.ended else 'stopped'}", file=out, flush=True)


class _Usage(Exception):
    pass


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.ERROR if args.quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(2, args.verbose)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    commands = {"demo": cmd_demo, "serve": cmd_serve, "receive": cmd_receive}
    try:
        return commands[args.command](args, sys.stdout)
    except _Usage as exc:
        parser.error(str(exc))
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (NetGearError, OSError) as exc:
        print(f"netgear: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
