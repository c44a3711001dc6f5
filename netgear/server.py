"""The sending side (a camera host).

``send()`` encodes in the caller's thread and hands the frame to ZeroMQ without a copy.
REQ/REP waits for the hub's acknowledgement (retrying on a fresh socket, then raising
:class:`~netgear.errors.RequestTimeout`); PUB/SUB never blocks. A small heartbeat thread
speaks up when the caller has been quiet, so an idle server is still seen as alive, and
``close()`` says goodbye so the hub reports the server closed at once.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
import warnings
from typing import Any, Callable, List, Optional

import numpy as np

from .errors import ClosedError, ProtocolError, RequestTimeout
from .options import Settings
from .transport import ServerTransport
from .wire import NO_MESSAGE, Kind, Limits
from .wire import native

__all__ = ["Server", "default_server_id"]

_log = logging.getLogger(__name__)

#: how often a waiting send() looks at whether close() was called
_SLICE = 0.05
#: how long close() lets the goodbye message get out
_GOODBYE_LINGER = 0.25


def default_server_id() -> str:
    """``host:pid``: unique per process on a network, stable for the process's life."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Server:
    """One camera host's connection to the hub. Use via ``NetGear``."""

    def __init__(self, settings: Settings, log: Optional[logging.Logger] = None) -> None:
        opts = settings.options
        self._opts = opts
        self._log = log or _log
        self._pattern = settings.pattern
        self.endpoint = settings.endpoints[0]
        self.topic = opts.topic or str(self.endpoint.port)
        self.server_id = opts.server_id or default_server_id()
        self._session = secrets.randbits(32)
        self._limits = Limits(opts.max_message_bytes, opts.max_frame_bytes)
        self._transport = ServerTransport(settings.pattern, self.endpoint, opts, self.topic)
        self._lock = threading.Lock()
        self._seq = 0
        self._last_sent = 0.0
        self._closing = threading.Event()
        self._closed = False
        self._heartbeat = threading.Thread(
            target=self._beat, name=f"netgear-heartbeat-{self.endpoint.port}", daemon=True
        )
        self._heartbeat.start()
        self._log.info(
            "server %r connecting to %s (%s, topic %r)",
            self.server_id,
            self.endpoint.url(),
            settings.pattern_name,
            self.topic,
        )

    def send(self, frame: Optional[np.ndarray], message: Any = None) -> Any:
        """Send ``frame`` (and ``message`` unless it is None) to the hub.

        REQ/REP: returns once the hub has the frame, with the hub's answer in
        ``bidirectional_mode`` (else None). Raises ``RequestTimeout`` after
        ``request_timeout`` x (``max_retries`` + 1) seconds without an answer; the object
        stays usable. PUB/SUB: returns at once (frames are dropped, never queued without
        bound, while the hub is slow or absent). With PUB/SUB and PAIR do not modify the
        array in place after ``send()``: ZeroMQ may still be reading it.
        """
        if self._closing.is_set():
            raise ClosedError(f"server {self.server_id!r} is closed")
        msg = NO_MESSAGE if message is None else message
        with self._lock:
            self._seq += 1
            parts = native.encode_frame(
                seq=self._seq,
                sent_ns=time.time_ns(),
                server_id=self.server_id,
                session=self._session,
                topic=self.topic,
                frame=frame,
                message=msg,
                limits=self._limits,
            )
            if self._pattern == 1:
                return self._request(parts, self._seq)
            if self._pattern == 0:
                self._wait(lambda t: self._transport.send(parts, timeout=t), "room to send")
            else:
                self._transport.send(parts)
            self._last_sent = time.monotonic()
            return None

    # -- REQ/REP -------------------------------------------------------------------------

    def _request(self, parts: List[Any], seq: int) -> Any:
        attempts = self._opts.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                if self._wait(lambda t: self._transport.send(parts, timeout=t), "a connection"):
                    reply = self._wait(lambda t: self._answer_to(seq, t), "an acknowledgement")
                    self._last_sent = time.monotonic()
                    return reply.value
            except RequestTimeout:
                pass
            self._log.warning(
                "no answer from the hub at %s within %.3gs (attempt %d/%d)%s",
                self.endpoint.url(),
                self._opts.request_timeout,
                attempt,
                attempts,
                "; retrying on a fresh socket" if attempt < attempts else "",
            )
            self._transport.reset()
        raise RequestTimeout(
            f"hub at {self.endpoint.url()} did not acknowledge frame {seq} after {attempts} "
            f"attempts of {self._opts.request_timeout:g}s (request_timeout, max_retries)"
        )

    def _answer_to(self, seq: int, timeout: float) -> Optional["_Reply"]:
        frames = self._transport.recv(timeout)
        if frames is None:
            return None
        try:
            ack = native.decode_ack(frames, self._limits)
        except ProtocolError as exc:
            self._log.debug("ignored a malformed answer from the hub: %s", exc)
            return None
        if ack.seq != seq:
            return None  # a late answer to an earlier attempt
        return _Reply(ack.reply if ack.has_reply else None)

    def _wait(self, attempt: Callable[[float], Any], what: str) -> Any:
        """Call ``attempt(slice)`` until it returns something truthy or request_timeout passes."""
        deadline = time.monotonic() + self._opts.request_timeout
        while True:
            if self._closing.is_set():
                raise ClosedError(f"server {self.server_id!r} was closed while waiting for {what}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RequestTimeout(f"no {what} from {self.endpoint.url()} within {self._opts.request_timeout:g}s")
            result = attempt(min(_SLICE, remaining))
            if result:
                return result

    # -- heartbeats and goodbye ------------------------------------------------------------

    def _control(self, kind: Kind) -> List[bytes]:
        return native.encode_control(
            kind,
            seq=self._seq,
            sent_ns=time.time_ns(),
            server_id=self.server_id,
            session=self._session,
            topic=self.topic,
        )

    def _beat(self) -> None:
        interval = self._opts.heartbeat_interval
        while not self._closing.wait(interval / 2):
            if time.monotonic() - self._last_sent < interval:
                continue
            if not self._lock.acquire(blocking=False):
                continue  # a send() is in progress: that is a sign of life already
            try:
                if not self._closing.is_set():
                    self._transport.send(self._control(Kind.HEARTBEAT), control=True)
                    self._last_sent = time.monotonic()
            except Exception:  # pragma: no cover - must never kill the thread
                self._log.debug("heartbeat failed", exc_info=True)
            finally:
                self._lock.release()

    def close(self) -> None:
        """Say goodbye to the hub and release everything. Idempotent; returns within 1 s."""
        if self._closed:
            return
        self._closing.set()
        self._heartbeat.join(timeout=0.5)
        locked = self._lock.acquire(timeout=0.3)
        try:
            if self._closed:
                return
            self._closed = True
            if locked:
                try:
                    self._transport.send(self._control(Kind.BYE), control=True)
                except Exception:  # pragma: no cover
                    self._log.debug("goodbye could not be sent", exc_info=True)
            self._transport.close(linger=_GOODBYE_LINGER if locked else 0.0)
        finally:
            if locked:
                self._lock.release()
        self._log.info("server %r closed", self.server_id)

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(f"netgear server {self.server_id!r} was never closed", ResourceWarning, stacklevel=2)
            try:
                self.close()
            except Exception:  # pragma: no cover
                pass


class _Reply:
    """A received answer (truthy even when the answered value is falsy)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value
