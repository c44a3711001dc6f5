"""``NetGear``: vidgear's constructor and methods over netgear's Server and Client."""

from __future__ import annotations

import itertools
import logging as _logging
from typing import Any, Iterator, List, Optional, Sequence, Union

import numpy as np

from .client import Client
from .errors import ConfigError
from .liveness import Event
from .memory import keep_freed_memory
from .options import Settings, build_settings
from .packet import Packet
from .server import Server
from .stats import HubSnapshot

__all__ = ["NetGear"]

_log = _logging.getLogger(__name__)
_instances = itertools.count(1)

Port = Union[int, str]


class NetGear:
    """A camera host (server mode, the default) or the hub (``receive_mode=True``).

    Server: connects to the hub at ``address:port`` and ``send()``s frames.
    Hub: binds ``port`` (a list of ports with ``multiserver_mode=True``) and ``recv()``s.

    ``pattern``: 0 PAIR (single pair only), 1 REQ/REP, 2 PUB/SUB; default 1 in
    ``multiserver_mode``, else 0, as in vidgear. Options may be keywords or an unpacked dict
    (``**{"multiserver_mode": True}``); see :mod:`netgear.options` for the full list.

    Example::

        with NetGear(receive_mode=True, port=[5566, 5567], multiserver_mode=True) as hub:
            for packet in hub:
                print(packet.port, packet.frame.shape, packet.message)
    """

    def __init__(
        self,
        address: Optional[str] = None,
        port: Union[Port, Sequence[Port], None] = None,
        protocol: str = "tcp",
        pattern: Optional[int] = None,
        receive_mode: bool = False,
        logging: bool = False,
        **options: Any,
    ) -> None:
        self._settings: Settings = build_settings(
            address=address,
            port=port,
            protocol=protocol,
            pattern=pattern,
            receive_mode=receive_mode,
            logging=logging,
            options=options,
        )
        self._log = _object_logger(self._settings)
        if self._settings.options.reuse_memory:
            keep_freed_memory()
        self._server: Optional[Server] = None
        self._client: Optional[Client] = None
        if self._settings.receive_mode:
            self._client = Client(self._settings, self._log)
        else:
            self._server = Server(self._settings, self._log)

    # -- server mode -------------------------------------------------------------------

    def send(self, frame: Optional[np.ndarray], message: Any = None) -> Any:
        """Send a frame (with ``message`` unless None). Returns the hub's answer or None."""
        return self._need_server("send").send(frame, message)

    def send_jpeg(
        self,
        data: Any,
        message: Any = None,
        *,
        shape: Optional[Sequence[int]] = None,
        colorspace: str = "BGR",
    ) -> Any:
        """Send an already-encoded JPEG (a camera's MJPEG frame, say) without re-encoding.

        The hub decodes it like any JPEG frame (``packet.jpeg`` keeps the bytes).
        ``shape`` is read from the JPEG header when omitted.
        """
        return self._need_server("send_jpeg").send_jpeg(data, message, shape=shape, colorspace=colorspace)

    # -- receive mode ------------------------------------------------------------------

    def recv(self, return_data: Any = None, timeout: Optional[float] = None) -> Any:
        """Next frame in vidgear's shapes; ``None`` when every server is gone.

        multi-server: ``(port, frame)``, or ``(port, message, frame)`` when that server sent
        a message; single pair: ``frame`` or ``(message, frame)``. ``return_data`` answers
        the frame returned by the previous call (``bidirectional_mode``).
        Raises ``RecvTimeout`` (a ``TimeoutError``) after ``timeout`` seconds.
        """
        packet = self._need_client("recv").recv_packet(timeout, answer=return_data)
        if packet is None:
            return None
        if self._settings.options.multiserver_mode:
            return (packet.port, packet.message, packet.frame) if packet.has_message else (packet.port, packet.frame)
        return (packet.message, packet.frame) if packet.has_message else packet.frame

    def recv_packet(self, timeout: Optional[float] = None) -> Optional[Packet]:
        """Next :class:`Packet` (one fixed shape), or None when every server is gone."""
        return self._need_client("recv_packet").recv_packet(timeout)

    def __iter__(self) -> Iterator[Packet]:
        """Packets until every server is gone (or the hub is closed)."""
        return iter(self._need_client("iteration"))

    def snapshot(self) -> HubSnapshot:
        """Per-port and per-server state and counters, frozen at this instant."""
        return self._need_client("snapshot").snapshot()

    def pop_events(self) -> List[Event]:
        """Liveness events (joined, left, returned, duplicate, ended) since the last call."""
        return self._need_client("pop_events").pop_events()

    def reload_keys(self) -> int:
        """Ironhouse hub (``secure_mode=2``): re-read the allow-list of server public keys.

        A server whose key file was removed has its new connections refused from now on
        (its established connection is not cut); others are unaffected. Returns how many
        keys are allowed (0 without Ironhouse). A missing folder raises ``ConfigError``.
        """
        return self._need_client("reload_keys").reload_keys()

    @property
    def ports(self) -> List[int]:
        """Ports in use: a hub's actual bound ports (port 0 asks the kernel), or the server's."""
        if self._client is not None:
            return list(self._client.ports)
        return [self._settings.endpoints[0].port]

    @property
    def delivery(self) -> str:
        """The hub's delivery policy: ``"fifo"`` or ``"latest"`` (the pattern's default
        unless ``delivery=`` was given)."""
        self._need_client("delivery")
        return self._settings.delivery

    @property
    def server_id(self) -> str:
        """This server's id (server mode)."""
        return self._need_server("server_id").server_id

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Release sockets and threads; a server says goodbye. Idempotent, returns in < 1 s."""
        part = self._client or self._server
        if part is not None:
            part.close()

    def __enter__(self) -> "NetGear":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self._settings
        role = "hub" if s.receive_mode else "server"
        ports = self.ports if s.receive_mode else s.endpoints[0].port
        return f"<NetGear {role} {s.pattern_name} port={ports}>"

    def _need_server(self, what: str) -> Server:
        if self._server is None:
            raise ConfigError("receive_mode", f"{what} is for servers; this NetGear has receive_mode=True")
        return self._server

    def _need_client(self, what: str) -> Client:
        if self._client is None:
            raise ConfigError("receive_mode", f"{what} needs receive_mode=True; this NetGear is a server")
        return self._client


def _object_logger(settings: Settings) -> _logging.Logger:
    """A child of this module's logger per object; ``logging=True`` shows its DEBUG lines."""
    role = "hub" if settings.receive_mode else "server"
    log = _log.getChild(f"{role}{next(_instances)}")
    if settings.logging:
        log.setLevel(_logging.DEBUG)
        if not _logging.getLogger().handlers and not log.handlers:
            handler = _logging.StreamHandler()
            handler.setFormatter(_logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
            log.addHandler(handler)
    return log
