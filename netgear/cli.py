"""The ``netgear`` command (also ``python -m netgear``): ``demo``, ``serve`` and ``receive``.

Exit codes: 0 normal end, 1 runtime error, 2 usage error, 130 interrupted (Ctrl+C).
Errors are one line on stderr (``netgear: error: ...``), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, TextIO, Tuple

# FFmpeg inside OpenCV reads its log level once, when OpenCV is imported: keep its chatter
# about unreadable files off the terminal (our own one-line error says it).
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # noqa: E402

from . import __version__  # noqa: E402
from .display import Display, Montage, gui_available, write_image  # noqa: E402
from .errors import ConfigError, NetGearError, RecvTimeout  # noqa: E402
from .gear import NetGear  # noqa: E402
from .options import DELIVERIES  # noqa: E402
from .record import Recorder  # noqa: E402
from .sources import Synthetic, open_source  # noqa: E402
from .stats_view import LiveStats, StatsView, format_table  # noqa: E402

__all__ = ["main", "build_parser"]

_log = logging.getLogger(__name__)

_PATTERNS = {"reqrep": 1, "pubsub": 2}

EPILOG = """examples:
  netgear demo                                    3 synthetic servers into one hub, 5 s
  netgear demo --servers 8 --pattern pubsub --seconds 10 --snapshot wall.png
  netgear receive --ports 5566 5567 --montage --stats
  netgear receive --ports 5566 5567 --snapshot wall.png --record videos/
  netgear serve --address 192.168.1.10 --port 5566 --source 0 --fps 15
  netgear serve --port 5567 --source parking.mp4 --loop --message '{"cam": "gate"}'

exit codes: 0 normal end, 1 runtime error, 2 usage error, 130 interrupted (Ctrl+C)
"""

SERVE_EPILOG = """examples:
  netgear serve --port 5566                               synthetic frames to 127.0.0.1:5566
  netgear serve --address 192.168.1.10 --port 5566 --source 0 --size 640x480
  netgear serve --port 5567 --source clip.mp4 --loop --topic gate
  netgear serve --port 5568 --source captures/ --fps 2 --id shelf-cam
  netgear serve --address hub --port 5566 --secure 2 --keys ~/.netgear/keys --key-name cam1
"""

RECEIVE_EPILOG = """examples:
  netgear receive --ports 5566 5567 --montage             one window, each server's newest frame
  netgear receive --ports 5566 5567 --montage --record videos/   shown and recorded: every frame
  netgear receive --ports 5566 5567 --windows             one window per server
  netgear receive --ports 5566 5567 --snapshot wall.png   no display: look at wall.png
  netgear receive --ports 5566 5567 --record videos/ --stats
  netgear receive --ports 0 0                             kernel-chosen ports, printed first
  netgear receive --ports 5566 5567 --secure 2 --keys ~/.netgear/keys   allow-listed servers only

The first line printed is "hub on ports [P1, P2, ...]". The hub ends (exit 0) when every
server is gone, after --frames N frames, or when q is pressed in a window.
"""

DEMO_EPILOG = """examples:
  netgear demo                                    3 servers, 5 s, montage or snapshots
  netgear demo --servers 8 --seconds 30 --pattern pubsub
  netgear demo --no-display --snapshot demo.png
"""


class _Usage(Exception):
    """A usage error found after parsing (exit 2)."""


# -- argument types ----------------------------------------------------------------------


def _size(text: str) -> Tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"sizes start at 16x16, got {text!r}")
    return (w, h)


def _message(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None


def _positive(kind: type):  # type: ignore[no-untyped-def]
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"ports are 0..65535, got {value}")
    return value


def _quality(text: str) -> int:
    value = _positive(int)(text)
    if not 10 <= value <= 100:  # the core's jpeg_compression_quality range
        raise argparse.ArgumentTypeError(f"JPEG quality is 10..100, got {value}")
    return value


_SECURE_MODES = {"0": 0, "none": 0, "1": 1, "stonehouse": 1, "2": 2, "ironhouse": 2}
_SECURE_NAMES = {0: "none", 1: "stonehouse", 2: "ironhouse"}


def _secure(text: str) -> int:
    try:
        return _SECURE_MODES[text.strip().lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"expected 0 (none), 1 (stonehouse) or 2 (ironhouse), got {text!r}") from None


def _key_name(text: str) -> str:
    from .options import parse_options

    try:
        parse_options({"key_name": text})  # the core's own rule for key names
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None
    return text


KEYS_EPILOG = """\
examples:
  netgear keys generate ~/.netgear/keys --name hub      # on the hub host
  netgear keys generate ~/.netgear/keys --name cam1     # on camera host cam1
  netgear keys list ~/.netgear/keys

Copy hub.key (public) to every server's keys folder; for Ironhouse (secure_mode=2) copy each
server's NAME.key into the hub's allow-list folder (default KEYS/authorized). Secret files
never leave their host.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``netgear`` command (also used to document it)."""
    parser = argparse.ArgumentParser(
        prog="netgear",
        description="Gather video frames from many camera hosts into one hub over ZeroMQ.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"netgear {__version__}")
    logs = argparse.ArgumentParser(add_help=False)
    logs.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    logs.add_argument("-q", "--quiet", action="store_true", help="only errors and the essential lines")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{demo,serve,receive,bench,keys}")

    def command(name: str, help: str, epilog: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help,
            description=help[0].upper() + help[1:] + ".",
            epilog=epilog,
            parents=[logs],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(parser=p)
        return p

    demo = command("demo", "synthetic servers in their own processes streaming into one hub", DEMO_EPILOG)
    demo.add_argument("--servers", type=_positive(int), default=3, metavar="N", help="number of servers, 1..64 (default 3)")
    demo.add_argument("--seconds", type=_positive(float), default=5.0, metavar="S", help="how long they stream (default 5)")
    demo.add_argument("--pattern", choices=_PATTERNS, default="reqrep", help="messaging pattern (default reqrep)")
    demo.add_argument("--size", type=_size, default=(320, 240), metavar="WxH", help="frame size WxH (default 320x240)")
    demo.add_argument("--fps", type=_positive(float), default=30.0, metavar="FPS", help="frames per second per server (default 30)")
    demo.add_argument("--snapshot", metavar="FILE", default=None,
                      help="write the montage to FILE every second (default without a display: "
                      "netgear-demo.png in the temporary folder)")
    demo.add_argument("--no-display", action="store_true", help="never open a window")
    demo.add_argument("--no-stats", action="store_true", help="no per-server table while running")

    serve = command("serve", "a camera host: send frames from a source to a hub", SERVE_EPILOG)
    serve.add_argument("--address", default="127.0.0.1", help="the hub's address (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, required=True, help="the hub port assigned to this server")
    serve.add_argument("--pattern", choices=_PATTERNS, default="reqrep", help="messaging pattern (default reqrep)")
    serve.add_argument("--source", default="synthetic", metavar="SOURCE",
                       help="'synthetic' (default), a camera index, a video file or a folder of images")
    serve.add_argument("--size", type=_size, default=None, metavar="WxH",
                       help="frame size WxH (synthetic default 640x480; others: resize to it)")
    serve.add_argument("--fps", type=_positive(float), default=None, metavar="FPS",
                       help="frames per second (default: 30 synthetic/folder, the file's own rate, camera's)")
    codec = serve.add_mutually_exclusive_group()
    codec.add_argument("--jpeg-quality", type=_quality, default=None, metavar="Q",
                       help="send JPEG-compressed frames of quality Q (10-100; the hub decodes them)")
    codec.add_argument("--raw", action="store_true", help="send raw frames, bit-exact (the default)")
    serve.add_argument("--topic", default=None, help="topic to publish under (default: the port)")
    serve.add_argument("--id", dest="server_id", default=None, help="server id (default host:pid)")
    serve.add_argument("--message", type=_message, default=None, metavar="JSON", help="JSON sent with every frame")
    serve.add_argument("--frames", type=_positive(int), default=None, metavar="N", help="stop after N frames")
    serve.add_argument("--loop", action="store_true", help="start a video file or folder over at its end")
    _security_arguments(serve, hub=False)

    recv = command("receive", "the hub: receive from every server; show, snapshot, record, tabulate",
                   RECEIVE_EPILOG)
    recv.add_argument("--ports", type=_port, nargs="+", required=True, metavar="PORT",
                      help="one port per server (0: let the kernel choose)")
    recv.add_argument("--address", default=None, help="interface to bind (default: all)")
    recv.add_argument("--pattern", choices=_PATTERNS, default="reqrep", help="messaging pattern (default reqrep)")
    recv.add_argument("--filter", nargs="+", default=None, metavar="PORT_OR_TOPIC",
                      help="only servers on these ports or with these topics")
    recv.add_argument("--delivery", choices=DELIVERIES, default=None,
                      help="fifo: every frame, in order; latest: only each server's newest frame, so a "
                           "display slower than its cameras never falls behind (default: latest when frames "
                           "are shown (--montage, --windows, --snapshot) and not recorded; otherwise fifo for "
                           "reqrep, latest for pubsub)")
    recv.add_argument("--montage", action="store_true", help="one window, one labelled tile per server")
    recv.add_argument("--windows", action="store_true", help="one window per server")
    recv.add_argument("--snapshot", metavar="FILE", default=None, help="write the montage to FILE periodically")
    recv.add_argument("--snapshot-every", type=_positive(float), default=1.0, metavar="S",
                      help="seconds between snapshots (default 1)")
    recv.add_argument("--tile", type=_size, default=(320, 240), metavar="WxH", help="montage tile size (default 320x240)")
    recv.add_argument("--columns", type=_positive(int), default=None, metavar="N", help="montage columns (default: about square)")
    recv.add_argument("--record", metavar="DIR", default=None, help="record one video file per port into DIR")
    recv.add_argument("--record-fps", type=_positive(float), default=30.0, metavar="FPS",
                      help="frame rate written into recordings (default 30)")
    recv.add_argument("--stats", action="store_true", help="a live per-server table")
    recv.add_argument("--frames", type=_positive(int), default=None, metavar="N", help="stop after N frames")
    recv.add_argument("--timeout", type=_positive(float), default=None, metavar="S",
                      help="fail (exit 1) after S seconds without a frame")
    recv.add_argument("--grace", type=float, default=30.0, metavar="S",
                      help="seconds a port may wait for its first server (default 30)")
    _security_arguments(recv, hub=True)
    bench = command("bench", "run the benchmark suite (a source checkout's benchmarks/)", BENCH_EPILOG)
    bench.add_argument("bench_args", nargs="*", help="arguments for benchmarks/bench.py (--full, --only NAME, ...)")
    keys = command("keys", "create and list CURVE key pairs for secure_mode", KEYS_EPILOG)
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="{generate,list}")
    gen = keys_sub.add_parser("generate", help="create NAME.key (public) and NAME.key_secret (0600) in DIR (0700)")
    gen.add_argument("dir", metavar="DIR", help="keys folder (created 0700)")
    gen.add_argument("--name", default="server", help="key pair name (default 'server'; the hub's is 'hub')")
    gen.set_defaults(parser=gen)
    lst = keys_sub.add_parser("list", help="list the keys in DIR and the state of their secret files")
    lst.add_argument("dir", metavar="DIR", help="keys folder")
    lst.set_defaults(parser=lst)
    return parser


def _security_arguments(parser: argparse.ArgumentParser, *, hub: bool) -> None:
    """``--secure`` and the key flags of ``serve`` (hub=False) and ``receive`` (hub=True)."""
    group = parser.add_argument_group("security (CURVE keys from `netgear keys generate`)")
    group.add_argument("--secure", type=_secure, default=0, metavar="{0,1,2}",
                       help="0 none (default), 1 stonehouse: encrypted, any server key, "
                       "2 ironhouse: encrypted, allow-listed server keys only; both sides must agree")
    group.add_argument("--keys", metavar="DIR", default=None,
                       help="keys folder: " + ("the hub's pair (hub.key_secret) and, for --secure 2, authorized/"
                                               if hub else "this server's pair and the hub's public key (hub.key)"))
    group.add_argument("--key-name", type=_key_name, default=None, metavar="NAME",
                       help=f"name of this {'hub' if hub else 'server'}'s key pair in --keys "
                       f"(default '{'hub' if hub else 'server'}')")
    if hub:
        group.add_argument("--authorized", metavar="DIR", default=None,
                           help="--secure 2: folder of the allowed servers' NAME.key files (default KEYS/authorized)")
    else:
        group.add_argument("--hub-key", type=_key_name, default=None, metavar="NAME",
                           help="name of the hub's public key file NAME.key in --keys (default 'hub')")


#: the core's option -> the flag that sets it (its errors are reported against the flag)
_SECURITY_FLAGS = {"secure_mode": "--secure", "custom_cert_location": "--keys", "key_name": "--key-name",
                   "hub_key": "--hub-key", "authorized_keys": "--authorized"}


def _security_options(args: argparse.Namespace, *, hub: bool) -> Dict[str, Any]:
    """The core's security options from the flags; a usage error naming the flag if they cannot work."""
    from . import keys

    flags = {"--keys": args.keys, "--key-name": args.key_name,
             "--authorized": getattr(args, "authorized", None), "--hub-key": getattr(args, "hub_key", None)}
    given = [flag for flag, value in flags.items() if value is not None]
    mode = args.secure
    if mode == 0:
        if given:
            raise _Usage(f"{given[0]} needs --secure {'2' if given[0] == '--authorized' else '1 or 2'}")
        return {}
    if args.keys is None:
        raise _Usage(f"--keys DIR is required with --secure {mode} (create the keys with `netgear keys generate`)")
    if flags["--authorized"] is not None and mode != 2:
        raise _Usage("--authorized is the Ironhouse allow-list: it needs --secure 2")
    folder = Path(args.keys).expanduser()
    if not folder.is_dir():
        raise _Usage(f"--keys: {folder} is not a folder")
    own = args.key_name or ("hub" if hub else "server")
    if not (folder / (own + keys.SECRET)).is_file():
        flag = "--key-name" if args.key_name else "--keys"
        raise _Usage(f"{flag}: no key pair {own!r} in {folder} "
                     f"(create it there with `netgear keys generate {folder} --name {own}`)")
    if not hub:
        hub_key = args.hub_key or "hub"
        if not (folder / (hub_key + keys.PUBLIC)).is_file():
            flag = "--hub-key" if args.hub_key else "--keys"
            raise _Usage(f"{flag}: no hub public key {folder / (hub_key + keys.PUBLIC)} (copy the hub's "
                         f"{hub_key}.key there)")
    elif mode == 2:
        allowed = Path(args.authorized).expanduser() if args.authorized else folder / "authorized"
        if not allowed.is_dir():
            flag = "--authorized" if args.authorized else "--keys"
            raise _Usage(f"{flag}: no allow-list folder {allowed} (copy the allowed servers' NAME.key files there)")
    options: Dict[str, Any] = {"secure_mode": mode, "custom_cert_location": str(folder)}
    if args.key_name:
        options["key_name"] = args.key_name
    if flags["--hub-key"]:
        options["hub_key"] = args.hub_key
    if flags["--authorized"]:
        options["authorized_keys"] = str(Path(args.authorized).expanduser())
    return options


_DELIVERY_NAMES = {
    "fifo": "every frame of each server, in order",
    "latest": "only each server's newest frame; older ones are dropped and counted",
}


def _open_gear(**kwargs: Any) -> NetGear:
    """``NetGear(**kwargs)``; a refused security option is a usage error naming its flag."""
    try:
        return NetGear(**kwargs)
    except ConfigError as exc:
        flag = _SECURITY_FLAGS.get(exc.option)
        if flag is None:
            raise
        raise _Usage(f"{flag}: {str(exc).split(': ', 1)[-1]}") from None


# -- the hub's side: show, snapshot, record, tabulate ------------------------------------


class HubView:
    """Everything ``receive`` and ``demo`` do with the hub's packets besides counting them."""

    def __init__(
        self,
        hub: NetGear,
        out: TextIO,
        *,
        montage: bool = False,
        windows: bool = False,
        snapshot: Optional[str] = None,
        snapshot_every: float = 1.0,
        record: Optional[str] = None,
        record_fps: float = 30.0,
        stats: bool = False,
        tile: Tuple[int, int] = (320, 240),
        columns: Optional[int] = None,
        filter: Optional[Sequence[str]] = None,
        quiet: bool = False,
    ) -> None:
        self.hub = hub
        self.out = out
        self.quiet = quiet
        self.live = LiveStats()
        self.montage = Montage(tile, columns, filter=filter)
        self.windows = windows
        self.display: Optional[Display] = Display() if (montage or windows) else None
        if self.display is not None and not self.display.enabled and not snapshot:
            _log.warning("use --snapshot FILE to look at the streams on a machine without a display")
        self.snapshot = Path(snapshot) if snapshot else None
        if self.snapshot is not None:
            _check_image_path(self.snapshot)
        self.snapshot_every = snapshot_every
        self.recorder = Recorder(record, fps=record_fps) if record else None
        self.table = StatsView(out) if stats and not quiet else None
        now = time.monotonic()
        self._next_snapshot = now + snapshot_every
        self._next_frame = now
        self._next_progress = now + 5.0
        self.frames = 0

    def packet(self, packet: Any) -> None:
        self.frames += 1
        self.live.observe(packet)
        self.montage.update(packet)
        if self.recorder is not None:
            self.recorder.write(packet.port, packet.frame)

    def tick(self) -> bool:
        """Periodic work; False when the user closed the display."""
        for event in self.hub.pop_events():
            self._print_event(event)
        now = time.monotonic()
        snap = None
        if self.table is not None and self.table.due():
            snap = self.hub.snapshot()
            self.table.update(self.live.rows(snap), f"{self.frames} frames")
        elif self.table is None and not self.quiet and now >= self._next_progress:
            snap = self.hub.snapshot()
            alive = len(snap.alive())
            print(f"{self.frames} frames so far from {alive} server{'s' * (alive != 1)} alive", file=self.out,
                  flush=True)
            self._next_progress = now + 5.0
        if self.snapshot is not None and now >= self._next_snapshot:
            self.write_snapshot(snap)
            self._next_snapshot = now + self.snapshot_every
        if self.display is not None and self.display.enabled and now >= self._next_frame:
            self._next_frame = now + 1 / 30
            return self._show(snap)
        return True

    def _show(self, snap: Any) -> bool:
        assert self.display is not None
        snap = snap or self.hub.snapshot()
        self.live.rows(snap)  # refreshes the rates shown on the tiles
        rates = self.live.rates()
        if not self.windows:
            return self.display.show("netgear", self.montage.render(snap, rates))
        keep_going = True
        for key in self.montage.keys(snap):
            tile = self.montage.tiles.get(key)
            if tile is None or tile.frame is None:
                continue
            image = self.montage.tile_image(key, snap, rates, size=(tile.frame.shape[1], tile.frame.shape[0]))
            keep_going = self.display.show(f"{key[0]} {key[1]}", image) and keep_going
        return keep_going

    def write_snapshot(self, snap: Any = None) -> None:
        if self.snapshot is None:
            return
        snap = snap or self.hub.snapshot()
        self.live.rows(snap)
        write_image(self.snapshot, self.montage.render(snap, self.live.rates()))

    def _print_event(self, event: Any) -> None:
        if self.quiet or event.kind == "ended":
            return
        who = f"{event.port} {event.server_id or '(nobody)'}"
        detail = f" ({event.reason})" if event.reason else ""
        if event.kind == "duplicate":
            detail = f" (also {event.other_id} on this port)"
        print(f"{who} {event.kind}{detail}", file=self.out, flush=True)

    def close(self, how: str) -> None:
        """Final snapshot, files closed, final table and summary."""
        for event in self.hub.pop_events():
            self._print_event(event)
        snap = self.hub.snapshot()
        rows = self.live.rows(snap)
        if self.table is not None:
            self.table.close()
        if self.display is not None:
            self.display.close()
        if self.snapshot is not None:
            self.write_snapshot(snap)
        if self.recorder is not None:
            self.recorder.close()
        if not self.quiet:
            print("final:\n" + format_table(rows), file=self.out)
            for port, path in sorted(self.recorder.files.items()) if self.recorder else []:
                print(f"recorded port {port}: {path} ({self.recorder.counts[port]} frames)", file=self.out)
            if self.snapshot is not None:
                print(f"snapshot: {self.snapshot}", file=self.out)
        print(f"received {self.frames} frames; {how}", file=self.out, flush=True)


def _check_image_path(path: Path) -> None:
    """Fail before receiving anything if snapshots cannot be written to ``path``."""
    folder = path.parent
    if not folder.is_dir():
        raise OSError(f"{path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OSError(f"{path}: the folder {folder} is not writable")
    if not cv2.haveImageWriter(str(path)):
        raise OSError(f"{path}: no image format for this extension (use .png or .jpg)")


def _receive_loop(hub: NetGear, view: HubView, *, frames: Optional[int], timeout: Optional[float]) -> str:
    """Feed packets to ``view`` until the end; return why it ended."""
    last_frame = time.monotonic()
    while frames is None or view.frames < frames:
        try:
            packet = hub.recv_packet(timeout=0.1)
        except RecvTimeout:
            if timeout is not None and time.monotonic() - last_frame >= timeout:
                raise RecvTimeout(f"no frame for {timeout:g}s on ports {hub.ports} (--timeout)") from None
            if not view.tick():
                return "display closed"
            continue
        if packet is None:
            return "every server is gone"
        last_frame = time.monotonic()
        view.packet(packet)
        if not view.tick():
            return "display closed"
    return f"stopped after {frames} frames"


# -- commands ----------------------------------------------------------------------------


def _live_delivery(args: argparse.Namespace) -> Optional[str]:
    """``latest`` when frames are only shown (a montage, windows, snapshots) and not recorded:
    a display slower than its cameras then shows their newest frames instead of falling
    further behind them. None (the pattern's default) otherwise."""
    shown = args.montage or args.windows or args.snapshot
    return "latest" if shown and not args.record else None


def cmd_receive(args: argparse.Namespace, out: TextIO) -> int:
    options: Dict[str, Any] = {"multiserver_mode": True, "startup_grace": args.grace}
    if args.filter:
        options["filter"] = args.filter
    delivery = args.delivery or _live_delivery(args)
    if delivery:
        options["delivery"] = delivery
    if args.montage and args.windows:
        raise _Usage("choose one of --montage and --windows")
    options.update(_security_options(args, hub=True))
    if args.snapshot:
        _check_image_path(Path(args.snapshot))  # before binding anything
    with _open_gear(
        address=args.address, port=args.ports, pattern=_PATTERNS[args.pattern], receive_mode=True, **options
    ) as hub:
        view = HubView(
            hub,
            out,
            montage=args.montage,
            windows=args.windows,
            snapshot=args.snapshot,
            snapshot_every=args.snapshot_every,
            record=args.record,
            record_fps=args.record_fps,
            stats=args.stats,
            tile=args.tile,
            columns=args.columns,
            filter=args.filter,
            quiet=args.quiet,
        )
        how = "interrupted"
        try:
            print(f"hub on ports {hub.ports}", file=out, flush=True)  # after setup: Ctrl+C is handled from here
            if delivery and not args.quiet:
                why = "" if args.delivery else " (frames shown live; --delivery fifo for every frame)"
                print(f"delivery {hub.delivery}: {_DELIVERY_NAMES[hub.delivery]}{why}", file=out, flush=True)
            if args.secure and not args.quiet:
                allowed = hub.reload_keys()
                who = f"{allowed} server key{'s' * (allowed != 1)} allowed" if args.secure == 2 else "any server key"
                print(f"secure mode {args.secure} ({_SECURE_NAMES[args.secure]}): {who}", file=out, flush=True)
            how = _receive_loop(hub, view, frames=args.frames, timeout=args.timeout)
        finally:
            view.close(how)
    return 0


def cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    options: Dict[str, Any] = {"multiserver_mode": True}
    if args.topic:
        options["topic"] = args.topic
    if args.server_id:
        options["server_id"] = args.server_id
    if args.jpeg_quality is not None:
        options.update(jpeg_compression=True, jpeg_compression_quality=args.jpeg_quality)
    options.update(_security_options(args, hub=False))
    source = open_source(args.source, size=args.size, fps=args.fps, frames=args.frames, loop=args.loop,
                         seed=args.port)
    try:
        server = _open_gear(address=args.address, port=args.port, pattern=_PATTERNS[args.pattern], **options)
    except ConfigError as exc:
        if args.jpeg_quality is not None and exc.option.startswith("jpeg"):
            raise _Usage(f"--jpeg-quality: {exc}") from None
        raise
    sent, how = 0, "the source ended"
    try:
        if isinstance(source, Synthetic):
            source.label = server.server_id
        secured = f", secure mode {args.secure} with key {args.key_name or 'server'}" if args.secure else ""
        print(f"serving {args.source} to {args.address}:{args.port} as {server.server_id}{secured}", file=out,
              flush=True)
        start = next_progress = time.monotonic()
        for frame in source:
            server.send(frame, message=args.message)
            sent += 1
            if not args.quiet and time.monotonic() >= next_progress + 5.0:
                next_progress = time.monotonic()
                print(f"sent {sent} frames ({sent / (next_progress - start):.1f} fps)", file=out, flush=True)
        if args.frames is not None and sent >= args.frames:
            how = f"--frames {args.frames}"
    finally:
        server.close()
        getattr(source, "release", lambda: None)()
    print(f"sent {sent} frames; {how}", file=out, flush=True)
    return 0


def _demo_server(port: int, pattern: int, size: Tuple[int, int], fps: float, seconds: float, index: int,
                 stop: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches the whole group: the parent decides
    with NetGear(address="127.0.0.1", port=port, pattern=pattern, multiserver_mode=True,
                 server_id=f"demo-{index + 1}") as server:
        deadline = time.monotonic() + seconds
        for frame in Synthetic(size, fps, seed=index, label=f"demo-{index + 1}"):
            if stop.is_set() or time.monotonic() >= deadline:
                break
            server.send(frame, message={"server": index + 1})


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    if args.servers > 64:
        raise _Usage("--servers must be between 1 and 64")
    pattern = _PATTERNS[args.pattern]
    show = not args.no_display and gui_available()
    snapshot = args.snapshot
    if snapshot is None and not show:
        snapshot = os.path.join(tempfile.gettempdir(), "netgear-demo.png")
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    with NetGear(address="127.0.0.1", port=[0] * args.servers, pattern=pattern, receive_mode=True,
                 multiserver_mode=True, startup_grace=30.0) as hub:
        print(f"hub on ports {hub.ports}; {args.servers} synthetic servers for {args.seconds:g}s", file=out,
              flush=True)
        if snapshot:
            print(f"{'no display: ' if not show else ''}writing the montage to {snapshot} every second", file=out,
                  flush=True)
        procs = [
            ctx.Process(target=_demo_server, args=(p, pattern, args.size, args.fps, args.seconds, i, stop),
                        daemon=True, name=f"netgear-demo-server-{i + 1}")
            for i, p in enumerate(hub.ports)
        ]
        for proc in procs:
            proc.start()
        view = HubView(hub, out, montage=show, snapshot=snapshot, stats=not args.no_stats, quiet=args.quiet)
        how = "interrupted"
        try:
            how = _receive_loop(hub, view, frames=None, timeout=args.seconds + 30)
        finally:
            _stop_servers(hub, procs, stop)
            view.close(how)
        failed = [p.name for p in procs if p.exitcode not in (0, None) and how == "every server is gone"]
        if failed:
            raise RuntimeError(f"demo servers failed: {', '.join(failed)}")
    return 0


def _stop_servers(hub: NetGear, procs: List[Any], stop: Any) -> None:
    """Ask the servers to stop, keep the hub draining so none waits on it, then reap them."""
    stop.set()
    deadline = time.monotonic() + 5.0
    try:
        while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
            try:
                if hub.recv_packet(timeout=0.05) is None:
                    break
            except RecvTimeout:
                pass
    finally:
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(1)


# -- entry point -------------------------------------------------------------------------


BENCH_EPILOG = """examples:
  netgear bench                       the quick suite, printed as it runs
  netgear bench --full --json out.json
  netgear bench --only rtt20ms        scenarios whose name contains rtt20ms
  netgear bench --peers               the same jobs by netgear, vidgear and imagezmq
  netgear bench --codec               JPEG in one thread and in two: is the GIL released?
"""


def cmd_bench(args: argparse.Namespace, out: TextIO) -> int:
    """Run ``benchmarks/bench.py`` of the checkout this package was installed from."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    if not (root / "benchmarks" / "bench.py").is_file():
        raise OSError("the benchmarks ship with the source checkout: run `pip install -e .` from a clone")
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench", *args.bench_args], cwd=root)
    return done.returncode


def cmd_keys(args: argparse.Namespace, out: TextIO) -> int:
    """``netgear keys generate DIR [--name NAME]`` / ``netgear keys list DIR``."""
    from . import keys

    if args.keys_command == "generate":
        public, secret = keys.generate(args.dir, args.name)
        print(f"public key (copy it to the other side): {public}", file=out)
        print(f"secret key (mode 0600, keep it on this host): {secret}", file=out)
        return 0
    rows = keys.list_keys(args.dir)
    for name, public, state in rows:
        print(f"{name}\t{public.decode('ascii')}\t{state or 'public only'}", file=out)
    if not rows:
        print(f"no keys in {args.dir}", file=out)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # everything after it belongs to benchmarks/bench.py
        try:
            return cmd_bench(argparse.Namespace(bench_args=argv[1:]), sys.stdout)
        except OSError as exc:
            print(f"netgear: error: {exc}", file=sys.stderr)
            return 1
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.ERROR if args.quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(2, args.verbose)]
    logging.basicConfig(level=level, format="netgear: %(levelname)s: %(name)s: %(message)s")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    commands = {"demo": cmd_demo, "serve": cmd_serve, "receive": cmd_receive, "bench": cmd_bench, "keys": cmd_keys}
    try:
        return commands[args.command](args, sys.stdout)
    except _Usage as exc:
        args.parser.error(str(exc))  # exits 2
        return 2
    except KeyboardInterrupt:
        print("netgear: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (| head): nothing more to say
        return 1
    except (NetGearError, OSError, RuntimeError) as exc:
        print(f"netgear: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
