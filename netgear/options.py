"""Every option netgear understands, with its default, in one place.

``NetGear(**options)`` accepts vidgear's option names where they mean something here and
netgear's own. :func:`parse_options` turns the keyword arguments into a frozen
:class:`Options`; anything unknown, mistyped or conflicting raises
:class:`~netgear.errors.ConfigError` naming the option (with a suggestion for typos).

The tables in the documentation are generated from :data:`OPTION_DOCS` and
:data:`REFUSED_OPTIONS`, so this module is the single source of truth.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Tuple, Union

from .errors import ConfigError

__all__ = [
    "Options",
    "Endpoint",
    "Settings",
    "PATTERNS",
    "OPTION_DOCS",
    "REFUSED_OPTIONS",
    "parse_options",
    "build_settings",
]

#: pattern number -> name (vidgear's numbering)
PATTERNS = {0: "pair", 1: "reqrep", 2: "pubsub"}

FilterValue = Union[int, str]


@dataclass(frozen=True)
class Options:
    """Validated options of one ``NetGear`` object. Field defaults are the documented defaults."""

    multiserver_mode: bool = False
    filter: Optional[Tuple[str, ...]] = None
    topic: Optional[str] = None
    server_id: Optional[str] = None
    bidirectional_mode: bool = False
    request_timeout: float = 2.0
    max_retries: int = 3
    subscriber_timeout: Optional[float] = None
    heartbeat_interval: float = 0.5
    liveness_timeout: float = 1.5
    startup_grace: Optional[float] = 30.0
    delivery: Optional[str] = None
    queue_size: int = 8
    max_message_bytes: int = 1 << 20
    max_frame_bytes: int = 64 << 20
    send_hwm: int = 2
    send_buffer: Optional[int] = None
    publish_wait: float = 0.02
    jpeg_compression: Union[bool, str] = False
    jpeg_compression_quality: int = 90
    jpeg_compression_fastdct: bool = True
    jpeg_compression_fastupsample: bool = False
    jpeg_compression_subsampling: str = "420"
    jpeg_decode: bool = True
    decode_threads: Optional[int] = None
    max_inflight: int = 8
    max_inflight_bytes: int = 32 << 20
    wire_format: str = "native"
    connect_to: Optional[Tuple[str, ...]] = None
    secure_mode: int = 0
    custom_cert_location: Optional[str] = None
    key_name: Optional[str] = None
    hub_key: str = "hub"
    authorized_keys: Optional[str] = None
    reuse_memory: bool = True


#: option name -> (applies to, one-line meaning). Used for errors and the docs.
OPTION_DOCS: Mapping[str, Tuple[str, str]] = {
    "multiserver_mode": ("both", "one hub, many servers; the hub's `port` is a list of ports"),
    "filter": ("hub", "only deliver servers whose topic or port matches (str, int or a list)"),
    "topic": ("server", "topic this server publishes under (default: its port)"),
    "server_id": ("server", "identity carried with every frame (default: host:pid)"),
    "bidirectional_mode": ("both", "REQ/REP only: the hub answers each frame with data"),
    "request_timeout": ("server", "seconds a REQ/REP server waits for each acknowledgement"),
    "max_retries": ("server", "retries after a timeout before RequestTimeout (on a fresh socket unless the hub is connected and holding the frames)"),
    "subscriber_timeout": ("hub", "end the stream after this many seconds with no traffic"),
    "heartbeat_interval": ("server", "seconds of silence after which a server sends a heartbeat"),
    "liveness_timeout": ("hub", "seconds of silence after which a server is reported gone"),
    "startup_grace": ("hub", "seconds a configured port may stay unconnected (None: forever)"),
    "delivery": ("hub", "'fifo' (every frame, bounded queue) or 'latest' (newest per server)"),
    "queue_size": ("hub", "per-server queue length for the 'fifo' policy"),
    "max_message_bytes": ("both", "largest message (and header) accepted, in bytes"),
    "max_frame_bytes": ("both", "largest frame accepted, in bytes"),
    "send_hwm": ("server", "frames a PUB/SUB or PAIR server queues before dropping (more ride out a busy hub; each adds latency on a slow link); REQ/REP queues its max_inflight window"),
    "send_buffer": ("server", "bytes of the kernel's send buffer for the connection to the hub (0: the OS's autotuning, which on a slow link can hold seconds of frames, and on one host leaves frames to go cold in it)"),
    "publish_wait": ("server", "PUB/SUB: seconds `send()` may wait for room while a connected hub is behind, then drops the frame (0: drop at once; never waits when no hub is connected)"),
    "jpeg_compression": ("server", "False (raw), True (BGR) or the frames' colorspace: 'BGR', 'RGB', 'GRAY', 'BGRA' ..."),
    "jpeg_compression_quality": ("server", "JPEG quality, 10 to 100"),
    "jpeg_compression_fastdct": ("server", "faster DCT when encoding (and decoding, the header tells the hub)"),
    "jpeg_compression_fastupsample": ("server", "faster chroma upsampling when the hub decodes"),
    "jpeg_compression_subsampling": ("server", "chroma subsampling: '420', '422', '444', '440' or '411'"),
    "jpeg_decode": ("hub", "False: hand JPEG frames over encoded (`packet.jpeg`), no decode"),
    "decode_threads": ("hub", "threads decoding JPEG frames in parallel (None: one per core, at most 4)"),
    "max_inflight": ("server", "REQ/REP frames sent ahead of their acknowledgement (1: stop-and-wait); a frame asks for it once half the window has not"),
    "max_inflight_bytes": ("server", "REQ/REP: bytes of frames sent ahead of their acknowledgement; the window is the smaller of the two (at least one frame): by default 8 640x480 frames, 5 at 1920x1080"),
    "wire_format": ("server", "'native', or 'vidgear' / 'imagezmq' to feed a hub running those libraries"),
    "connect_to": ("hub", "PUB/SUB: addresses of publishers that bind (imagezmq senders) to connect to; `port` may then be omitted"),
    "secure_mode": ("both", "0 none, 1 Stonehouse (CURVE encryption, any server key), 2 Ironhouse (encryption + allow-list of server public keys); both sides must agree"),
    "custom_cert_location": ("both", "keys folder (`netgear keys generate`): this object's `<key_name>.key` / `.key_secret`, and a server's copy of the hub's public key"),
    "key_name": ("both", "name of this object's key pair in `custom_cert_location` (None: 'hub' for the hub, 'server' for a server)"),
    "hub_key": ("server", "name of the hub's public key file (`<hub_key>.key`) in `custom_cert_location`"),
    "reuse_memory": ("both", "keep freed frame buffers in the process for the next frames instead of returning them to the OS (64-bit glibc; process-wide, set once: see docs/performance.md)"),
    "authorized_keys": ("hub", "Ironhouse: folder of allowed server public keys (`*.key`; None: `<custom_cert_location>/authorized`); re-read by `reload_keys()`"),
}

#: vidgear option names that have no meaning here, with the reason given to the user.
REFUSED_OPTIONS: Mapping[str, str] = {
    "compression_format": "old vidgear name: use jpeg_compression=True (and jpeg_compression_quality)",
    "compression_param": "old vidgear name: use jpeg_compression_quality / jpeg_compression_fastdct",
    "overwrite_cert": "keys are never overwritten by a NetGear object: create them with `netgear keys generate`",
    "ssh_tunnel_mode": "netgear opens no SSH tunnels: run `ssh -L` yourself and use its address",
    "ssh_tunnel_pwd": "netgear opens no SSH tunnels: run `ssh -L` yourself and use its address",
    "ssh_tunnel_keyfile": "netgear opens no SSH tunnels: run `ssh -L` yourself and use its address",
    "multiclient_mode": "netgear has one hub per stream; to feed several hubs, run one server per hub",
    "flag": "send flags are chosen by netgear (zero-copy, non-blocking where it matters)",
    "copy": (
        "raw frames are always sent zero-copy; JPEG under 256 KiB is copied, which costs the sender less "
        "(see [Performance](performance.md#reading-the-numbers)); there is nothing to switch"
    ),
    "track": "not needed: REQ/REP send() returns after the hub has the frame",
}


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(name, f"expected True or False, got {value!r}")
    return value


def _seconds(name: str, value: Any, *, allow_none: bool = False, minimum: float = 0.0) -> Any:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        expected = "a number of seconds" + (" or None" if allow_none else "")
        raise ConfigError(name, f"expected {expected}, got {value!r}")
    if value <= minimum:
        raise ConfigError(name, f"must be greater than {minimum:g} seconds, got {value!r}")
    return float(value)


def _int(name: str, value: Any, *, minimum: int, maximum: int = 1 << 62) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, f"expected an integer, got {value!r}")
    if not minimum <= value <= maximum:
        raise ConfigError(name, f"must be between {minimum} and {maximum}, got {value!r}")
    return value


def _label(name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ConfigError(name, f"expected a string (or a port number), got {value!r}")
    text = str(value)
    if not 1 <= len(text) <= 256 or "\x00" in text:
        raise ConfigError(name, f"must be 1 to 256 characters without NUL, got {value!r}")
    return text


def _filter(name: str, value: Any) -> Optional[Tuple[str, ...]]:
    if value is None:
        return None
    items = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
    if not items:
        raise ConfigError(name, "an empty list would filter out every server; use None for all")
    return tuple(sorted({_label(name, item) for item in items}))


#: the hub's delivery policies (``delivery=``)
DELIVERIES = ("fifo", "latest")


def _delivery(name: str, value: Any) -> Optional[str]:
    if value is None or value in DELIVERIES:
        return value
    raise ConfigError(name, f"expected 'fifo' or 'latest', got {value!r}")


def _choice(name: str, value: Any, choices: Tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(name, f"expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _jpeg_compression(name: str, value: Any) -> Union[bool, str]:
    colorspaces = ("BGR", "RGB", "GRAY", "BGRA", "RGBA", "BGRX", "RGBX")
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().upper() in colorspaces:
        return value.strip().upper()
    raise ConfigError(name, f"expected True, False or a colorspace {colorspaces}, got {value!r}")


def _addresses(name: str, value: Any) -> Optional[Tuple[str, ...]]:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ConfigError(name, f"expected an address such as 'tcp://cam1:5555' or a list of them, got {value!r}")
    for item in items:
        if not isinstance(item, str) or not item.startswith("tcp://") or not item.rsplit(":", 1)[-1].isdigit():
            raise ConfigError(name, f"expected 'tcp://host:port' (the port tags its frames), got {item!r}")
    return tuple(items)


def _folder(name: str, value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise ConfigError(name, f"expected a folder path, got {value!r}")
    return os.path.abspath(os.path.expanduser(str(value)))


def _key_name(name: str, value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", value) or value.startswith("."):
        raise ConfigError(name, f"expected a key name of letters, digits, '_', '-' or '.', got {value!r}")
    return value


_CHECKS: Mapping[str, Callable[[str, Any], Any]] = {
    "multiserver_mode": _bool,
    "filter": _filter,
    "topic": lambda n, v: None if v is None else _label(n, v),
    "server_id": lambda n, v: None if v is None else _label(n, v),
    "bidirectional_mode": _bool,
    "request_timeout": _seconds,
    "max_retries": lambda n, v: _int(n, v, minimum=0, maximum=100),
    "subscriber_timeout": lambda n, v: _seconds(n, v, allow_none=True),
    "heartbeat_interval": _seconds,
    "liveness_timeout": _seconds,
    "startup_grace": lambda n, v: _seconds(n, v, allow_none=True, minimum=-1e-9),
    "delivery": _delivery,
    "queue_size": lambda n, v: _int(n, v, minimum=1, maximum=100_000),
    "max_message_bytes": lambda n, v: _int(n, v, minimum=1024, maximum=1 << 31),
    "max_frame_bytes": lambda n, v: _int(n, v, minimum=1024, maximum=1 << 34),
    "send_hwm": lambda n, v: _int(n, v, minimum=1, maximum=100_000),
    "send_buffer": lambda n, v: None if v is None else _int(n, v, minimum=0, maximum=1 << 30),
    "publish_wait": lambda n, v: _seconds(n, v, minimum=-1e-9),
    "jpeg_compression": _jpeg_compression,
    "jpeg_compression_quality": lambda n, v: _int(n, v, minimum=10, maximum=100),
    "jpeg_compression_fastdct": _bool,
    "jpeg_compression_fastupsample": _bool,
    "jpeg_compression_subsampling": lambda n, v: _choice(n, str(v), ("420", "422", "444", "440", "411")),
    "jpeg_decode": _bool,
    "reuse_memory": _bool,
    "decode_threads": lambda n, v: None if v is None else _int(n, v, minimum=1, maximum=64),
    "max_inflight": lambda n, v: _int(n, v, minimum=1, maximum=64),
    "max_inflight_bytes": lambda n, v: _int(n, v, minimum=1, maximum=1 << 40),
    "wire_format": lambda n, v: _choice(n, v, ("native", "vidgear", "imagezmq")),
    "connect_to": _addresses,
    "secure_mode": lambda n, v: _int(n, v, minimum=0, maximum=2),
    "custom_cert_location": lambda n, v: _folder(n, v),
    "key_name": lambda n, v: None if v is None else _key_name(n, v),
    "hub_key": _key_name,
    "authorized_keys": lambda n, v: _folder(n, v),
}

assert set(_CHECKS) == {f.name for f in dataclasses.fields(Options)} == set(OPTION_DOCS)


def parse_options(raw: Mapping[str, Any]) -> Options:
    """Validate keyword options into :class:`Options`; raise ``ConfigError`` on any problem."""
    values = {}
    for name, value in raw.items():
        if name in REFUSED_OPTIONS:
            raise ConfigError(name, f"not supported: {REFUSED_OPTIONS[name]}")
        check = _CHECKS.get(name)
        if check is None:
            close = difflib.get_close_matches(name, list(_CHECKS) + list(REFUSED_OPTIONS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(name, f"unknown option{hint} (known: {', '.join(sorted(_CHECKS))})")
        values[name] = check(name, value)
    return Options(**values)


# --------------------------------------------------------------------------------------
# constructor arguments -> settings for Server / Client


@dataclass(frozen=True)
class Endpoint:
    """One ZeroMQ endpoint: the port is the tag frames are reported with."""

    protocol: str
    address: str
    port: int

    def url(self) -> str:
        if "://" in self.address:  # a full address to connect to (``connect_to``)
            return self.address
        if self.protocol == "ipc":
            return f"ipc://{self.address}/netgear-{self.port}.sock"
        host = f"[{self.address}]" if ":" in self.address and self.address != "*" else self.address
        return f"tcp://{host}:{self.port}"


@dataclass(frozen=True)
class Settings:
    """Everything a Server or Client needs, resolved from NetGear's arguments."""

    receive_mode: bool
    pattern: int
    endpoints: Tuple[Endpoint, ...]
    options: Options
    logging: bool = False

    @property
    def pattern_name(self) -> str:
        return PATTERNS[self.pattern]

    @property
    def delivery(self) -> str:
        if self.options.delivery is not None:
            return self.options.delivery
        return "latest" if self.pattern == 2 else "fifo"


def _port(name: str, value: Any, *, allow_zero: bool) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, f"expected a port number (int or numeric str), got {value!r}")
    low = 0 if allow_zero else 1
    if not low <= value <= 65535:
        raise ConfigError(name, f"must be between {low} and 65535, got {value!r}")
    return value


def _resolve_pattern(pattern: Any, multiserver: bool) -> int:
    if pattern is None:
        return 1 if multiserver else 0
    if isinstance(pattern, bool) or pattern not in PATTERNS:
        raise ConfigError("pattern", f"expected 0 (PAIR), 1 (REQ/REP) or 2 (PUB/SUB), got {pattern!r}")
    if multiserver and pattern == 0:
        raise ConfigError(
            "pattern", "multiserver_mode needs pattern=1 (REQ/REP) or 2 (PUB/SUB); PAIR has one peer"
        )
    return int(pattern)


def _resolve_ports(port: Any, receive_mode: bool, multiserver: bool) -> Tuple[int, ...]:
    if receive_mode and multiserver:
        if not isinstance(port, (list, tuple)) or not port:
            raise ConfigError(
                "port", f"in multiserver_mode the hub needs a list of ports, e.g. [5566, 5567]; got {port!r}"
            )
        ports = tuple(_port("port", p, allow_zero=True) for p in port)
        fixed = [p for p in ports if p != 0]
        if len(fixed) != len(set(fixed)):
            raise ConfigError("port", f"ports must be distinct, got {list(port)!r}")
        return ports
    if isinstance(port, (list, tuple)):
        where = "a server" if not receive_mode else "a single-pair hub (set multiserver_mode=True)"
        raise ConfigError("port", f"{where} takes one port, got {port!r}")
    if port is None:
        return (5555,)
    return (_port("port", port, allow_zero=receive_mode),)


def _resolve_address(address: Any, protocol: str, receive_mode: bool) -> str:
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise ConfigError("address", f"expected a host name or IP address as str, got {address!r}")
    if protocol == "ipc":
        import tempfile

        return address or tempfile.gettempdir()
    if address is None:
        return "*" if receive_mode else "127.0.0.1"
    return address.strip()


def build_settings(
    *,
    address: Any,
    port: Any,
    protocol: Any,
    pattern: Any,
    receive_mode: Any,
    logging: Any,
    options: Mapping[str, Any],
) -> Settings:
    """Resolve and validate NetGear's constructor arguments."""
    opts = parse_options(options)
    receive_mode = _bool("receive_mode", receive_mode)
    logging = _bool("logging", logging)
    if protocol not in ("tcp", "ipc"):
        raise ConfigError("protocol", f"expected 'tcp' or 'ipc', got {protocol!r}")
    pattern_no = _resolve_pattern(pattern, opts.multiserver_mode)
    if receive_mode and opts.connect_to is not None and (port is None or (isinstance(port, (list, tuple)) and not port)):
        ports: Tuple[int, ...] = ()  # a hub that only connects to publishers that bind
    else:
        ports = _resolve_ports(port, receive_mode, opts.multiserver_mode)
    host = _resolve_address(address, protocol, receive_mode)
    _check_modes(opts, pattern_no, receive_mode)
    endpoints = tuple(Endpoint(protocol, host, p) for p in ports)
    return Settings(receive_mode, pattern_no, endpoints, opts, logging)


def _check_modes(opts: Options, pattern: int, receive_mode: bool) -> None:
    if opts.bidirectional_mode and pattern != 1:
        raise ConfigError("bidirectional_mode", "needs pattern=1 (REQ/REP): PUB/SUB and PAIR have no reply")
    if opts.subscriber_timeout is not None and pattern != 2:
        raise ConfigError("subscriber_timeout", "only applies to pattern=2 (PUB/SUB)")
    if receive_mode:
        for name in ("topic", "server_id"):
            if getattr(opts, name) is not None:
                raise ConfigError(name, "is a server option; the hub learns it from each server")
    elif opts.filter is not None:
        raise ConfigError("filter", "is a hub option (receive_mode=True); servers set `topic`")
    if opts.connect_to is not None and (pattern != 2 or not receive_mode):
        raise ConfigError("connect_to", "is for a PUB/SUB hub (pattern=2, receive_mode=True) reading binding publishers")
    if opts.wire_format != "native" and receive_mode:
        raise ConfigError("wire_format", "is a server option: the hub recognises every format by itself")
    if opts.wire_format == "imagezmq" and pattern == 0:
        raise ConfigError("wire_format", "imagezmq has no PAIR pattern: use pattern=1 or 2")
    if opts.secure_mode:
        if opts.custom_cert_location is None:
            raise ConfigError("custom_cert_location", f"secure_mode={opts.secure_mode} needs the keys folder (see `netgear keys generate`)")
        if opts.connect_to is not None:
            raise ConfigError("secure_mode", "cannot be used with connect_to (binding publishers speak no CURVE)")
        if opts.wire_format != "native":
            raise ConfigError("secure_mode", "needs wire_format='native' (vidgear and imagezmq hubs use their own keys)")
    else:
        for name in ("custom_cert_location", "key_name", "authorized_keys"):
            if getattr(opts, name) is not None:
                raise ConfigError(name, "needs secure_mode=1 or 2")
    if opts.authorized_keys is not None and (opts.secure_mode != 2 or not receive_mode):
        raise ConfigError("authorized_keys", "is for an Ironhouse hub (secure_mode=2, receive_mode=True)")
    if opts.liveness_timeout <= opts.heartbeat_interval:
        raise ConfigError(
            "liveness_timeout",
            f"must exceed heartbeat_interval ({opts.heartbeat_interval:g}s), got {opts.liveness_timeout:g}s",
        )


def options_markdown() -> str:
    """The options reference page (docs/options.md), generated from this module."""
    defaults = Options()
    lines = [
        "# Options",
        "",
        "<!-- generated by `python -m netgear.options`; do not edit by hand -->",
        "",
        "Pass options as keywords (`NetGear(..., multiserver_mode=True)`) or as an unpacked dict",
        "(`NetGear(..., **options)`). An unknown option, a wrong type or a conflicting mode raises",
        "`netgear.ConfigError` (a `ValueError`) naming the option.",
        "",
        "| option | side | default | meaning |",
        "|---|---|---|---|",
    ]
    for name, (side, meaning) in OPTION_DOCS.items():
        default = getattr(defaults, name)
        shown = "pattern default" if name in ("delivery", "send_buffer") else repr(default)
        lines.append(f"| `{name}` | {side} | `{shown}` | {meaning} |")
    lines += [
        "",
        "`delivery` defaults to `'fifo'` for REQ/REP and PAIR and to `'latest'` for PUB/SUB.",
        "`send_buffer` defaults to 512 KiB for REQ/REP, the OS's autotuning for PAIR, and for",
        "PUB/SUB to 128 KiB, raised to half the largest frame sent up to 256 KiB (so raw frames",
        "get 256 KiB and compressed ones keep 128 KiB; why: docs/performance.md, \"A congested",
        "link\" and \"Kernel send buffers\"). A value you set is used as it is.",
        "",
        "## vidgear options that are refused",
        "",
        "These names are known but have no meaning here; passing one raises `ConfigError` with",
        "the reason below.",
        "",
        "| option | why |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | {why} |" for name, why in REFUSED_OPTIONS.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(options_markdown(), end="")
