"""The sending side (a camera host).

``send()`` encodes in the caller's thread (JPEG when asked, in the chosen wire format) and
hands the frame to ZeroMQ without a copy. REQ/REP keeps up to ``max_inflight`` frames
(and ``max_inflight_bytes``) in flight, acknowledged in order (a frame asks for its
acknowledgement once half the window has not, and the answer covers the frames before
it), so throughput does not collapse when the round trip grows;
without answers it retries on a fresh socket and then raises
:class:`~netgear.errors.RequestTimeout`. PUB/SUB waits at most ``publish_wait`` for room, then drops. A small heartbeat thread
speaks up when the caller is quiet, so an idle server is still seen as alive, and
``close()`` says goodbye so the hub reports the server closed at once.
"""

from __future__ import annotations

import collections
import logging
import os
import secrets
import socket
import threading
import time
import warnings
from typing import Any, Callable, Deque, List, Optional, Sequence, Set

import numpy as np

from . import codecs
from .errors import ClosedError, ProtocolError, RequestTimeout
from ._threads import show_name
from .options import Settings
from .transport import JPEG_COPY_BELOW, ServerTransport, bye_topic, copied
from .wire import NO_MESSAGE, Encoded, Limits, formats

__all__ = ["Server", "default_server_id"]

_log = logging.getLogger(__name__)

#: how often a waiting send() looks at whether close() was called
_SLICE = 0.05
#: how long close() waits for frames in flight, then lets the goodbye get out
_FLUSH = 0.4
_GOODBYE_LINGER = 0.25
#: PUB/SUB: how long close() waits for room for the goodbye and for the hub's confirmation
_GOODBYE_WAIT = 0.5


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
        self._limits = Limits(opts.max_message_bytes, opts.max_frame_bytes)
        fmt = formats.BY_NAME[opts.wire_format]
        self._speaker = formats.Speaker(
            fmt,
            server_id=self.server_id,
            session=secrets.randbits(32),
            topic=self.topic,
            port=self.endpoint.port if opts.multiserver_mode else None,
            pattern=settings.pattern,
            limits=self._limits,
        )
        self._jpeg = codecs.jpeg_settings(
            opts.jpeg_compression,
            opts.jpeg_compression_quality,
            opts.jpeg_compression_fastdct,
            opts.jpeg_compression_fastupsample,
            opts.jpeg_compression_subsampling,
        )
        self._raw_noted = False
        one_at_a_time = opts.bidirectional_mode or not self._speaker.sequenced
        self._window = 1 if one_at_a_time else opts.max_inflight
        #: the window for frames of the size being sent now: max_inflight frames, or fewer
        #: where max_inflight_bytes holds fewer (at least one)
        self._cur_window = self._window
        self._inflight: Deque[_InFlight] = collections.deque()
        self._asked = 0  # the last frame sent asking for its acknowledgement
        self._stale: Set[int] = set()  # frames of this send() dropped as too late to send
        self._acked_any = False
        self._transport = ServerTransport(settings.pattern, self.endpoint, opts, self.topic, fmt)
        self._lock = threading.Lock()
        self._seq = 0
        self._last_sent = 0.0
        self._closing = threading.Event()
        self._closed = False
        self._heartbeat: Optional[threading.Thread] = None
        if self._speaker.heartbeats:
            self._heartbeat = threading.Thread(
                target=self._beat, name=f"netgear-heartbeat-{self.endpoint.port}", daemon=True
            )
            self._heartbeat.start()
        self._log.info(
            "server %r connecting to %s (%s, topic %r, %s frames, %s wire format)",
            self.server_id,
            self.endpoint.url(),
            settings.pattern_name,
            self.topic,
            "JPEG" if self._jpeg else "raw",
            formats.name(fmt),
        )

    # -- sending ---------------------------------------------------------------------------

    def send(self, frame: Optional[np.ndarray], message: Any = None) -> Any:
        """Send ``frame`` (and ``message`` unless it is None) to the hub.

        REQ/REP: returns once the frame is in flight (``max_inflight`` frames ahead of their
        acknowledgement), or, in ``bidirectional_mode``, with the hub's answer to it.
        Raises ``RequestTimeout`` after ``request_timeout`` x (``max_retries`` + 1) seconds
        without answers; the object stays usable. PUB/SUB: returns at once while the hub keeps
        up or is absent; while a connected hub is behind, waits up to ``publish_wait``
        (20 ms) for room, then drops the frame (never queued without bound). Do not modify
        the array in place after ``send()`` while frames may be in flight (PUB/SUB, PAIR,
        ``max_inflight`` > 1): ZeroMQ may still be reading it.
        """
        return self._send(frame, None, message)

    def send_jpeg(
        self,
        data: Any,
        message: Any = None,
        *,
        shape: Optional[Sequence[int]] = None,
        colorspace: str = "BGR",
    ) -> Any:
        """Send an already-encoded JPEG (from a camera's MJPEG stream, say) without decoding it.

        ``shape`` is the frame's shape once decoded; read from the JPEG header when omitted
        (3 channels, or 2-D for ``colorspace="GRAY"``). The hub decodes it the way this
        server's ``jpeg_compression_fastdct`` / ``_fastupsample`` options say, whether or not
        ``jpeg_compression`` is on. Returns like :meth:`send`.
        """
        import simplejpeg

        if colorspace not in codecs.COLORSPACES:
            raise ValueError(f"colorspace must be one of {sorted(codecs.COLORSPACES)}, got {colorspace!r}")
        view = memoryview(data).cast("B")
        if shape is None:
            height, width, _, _ = simplejpeg.decode_jpeg_header(view)
            channels = codecs.COLORSPACES[colorspace]
            shape = (height, width) if channels == 1 else (height, width, channels)
        # how the hub should decode it: this server's jpeg_compression_fastdct/_fastupsample
        opts = self._opts
        settings = self._jpeg or codecs.JpegSettings(
            fastdct=opts.jpeg_compression_fastdct, fastupsample=opts.jpeg_compression_fastupsample
        )
        return self._send(
            None, Encoded("jpeg", view, colorspace, tuple(shape), settings.fastdct, settings.fastupsample), message
        )

    def _send(self, frame: Optional[np.ndarray], encoded: Optional[Encoded], message: Any) -> Any:
        if self._closing.is_set():
            raise ClosedError(f"server {self.server_id!r} is closed")
        msg = NO_MESSAGE if message is None else message
        if encoded is None and frame is not None and self._jpeg is not None:
            encoded = self._compress(frame)
            if encoded is not None:
                frame = None
        with self._lock:
            # The number is taken only once the frame encodes: a send() refused here
            # (bad message, too large) must not show up at the hub as a lost frame.
            seq = self._seq + 1
            request = self._pattern == 1 or self._speaker.replies
            if self._window > 1:
                size = frame.nbytes if isinstance(frame, np.ndarray) else 0
                if encoded is not None:
                    size = encoded.data.nbytes
                self._cur_window = max(1, min(self._window, self._opts.max_inflight_bytes // max(1, size)))
            defer = request and self._may_defer(seq)
            parts = self._speaker.frame(seq, frame, msg, encoded, defer=defer)
            if encoded is not None and encoded.data.nbytes < JPEG_COPY_BELOW:
                parts = [copied(part) if part is encoded.data else part for part in parts]
            self._seq = seq
            if request:
                if not defer:
                    self._asked = seq
                return self._request(parts, seq)
            if self._pattern == 0:
                self._wait(lambda t: self._transport.send(parts, timeout=t), "room to send")
            else:
                self._transport.send(parts)
            self._last_sent = time.monotonic()
            return None

    def _compress(self, frame: np.ndarray) -> Optional[Encoded]:
        assert self._jpeg is not None
        if not codecs.jpeg_can_carry(frame, self._jpeg):
            if not self._raw_noted:
                self._raw_noted = True
                self._log.debug(
                    "frames of dtype %s and shape %s cannot be %s JPEG: sending them raw",
                    frame.dtype,
                    frame.shape,
                    self._jpeg.colorspace,
                )
            return None
        data = codecs.encode_jpeg(frame, self._jpeg)
        return Encoded(
            "jpeg", memoryview(data), self._jpeg.colorspace, frame.shape, self._jpeg.fastdct, self._jpeg.fastupsample
        )

    # -- REQ/REP: a window of frames in flight -------------------------------------------

    def _request(self, parts: List[Any], seq: int) -> Any:
        """Put the frame in flight; wait while the window is full (or for its answer)."""
        self._stale.clear()
        if self._transport.dropped() and self._inflight:
            for item in self._inflight:  # their connection dropped: they go out again
                item.sent = False
        self._inflight.append(_InFlight(seq, parts))
        self._push(time.monotonic())  # no wait: a missing hub is the retry loop's business
        reply = None
        while True:
            for ack in self._answers(block=self._blocked()):
                if ack.has_reply and (ack.seq == seq or not self._speaker.sequenced):
                    reply = ack.reply
            if not self._blocked():
                break
        self._last_sent = time.monotonic()
        if seq in self._stale and self._opts.bidirectional_mode:
            raise RequestTimeout(
                f"frame {seq} could reach the hub at {self.endpoint.url()} only after more than "
                f"{self._opts.request_timeout:g}s (request_timeout): dropped, not sent late; no answer"
            )
        return reply

    def _may_defer(self, seq: int) -> bool:
        """Whether frame ``seq`` can go without asking for its acknowledgement. A frame
        asks once half the window (at least two frames) has gone without asking (an ACK
        covers the frames before it too), and so does any frame that fills the window, so
        a full window always has an answer coming. Like TCP's delayed ACK, this spares the
        hub most answers and this side most wake-ups to read them: with the default
        window of 8 frames, one in four asks. (A window over 1 means the native format:
        foreign ones are stop-and-wait.)"""
        window = self._cur_window
        return window > 1 and seq - self._asked < max(2, window // 2) and len(self._inflight) + 1 < window

    def _blocked(self) -> bool:
        """The window is full, or a frame could not go out yet (no hub connected)."""
        return len(self._inflight) >= self._cur_window or any(not item.sent for item in self._inflight)

    def _push(self, deadline: float) -> bool:
        """Send the frames in flight that are not out yet, waiting for room until ``deadline``.

        A frame that finds room only more than ``request_timeout`` after it was first
        sent (the hub came back after a partition or a restart) is dropped rather than
        sent late: after an outage the hub gets fresh frames, not a replayed backlog.
        Its number shows as a gap at the hub (``lost``)."""
        stale: List[int] = []
        try:
            for item in list(self._inflight):
                if item.sent:
                    continue
                # a fresh frame is tried at once (the usual case); the wait for room comes
                # only after a refusal, and an old frame is judged only once it could go
                ready = time.monotonic() - item.created <= self._opts.request_timeout
                while True:
                    if ready or self._transport.writable(min(_SLICE, max(0.0, deadline - time.monotonic()))):
                        if time.monotonic() - item.created > self._opts.request_timeout:
                            self._inflight.remove(item)
                            stale.append(item.seq)
                            break
                        if self._transport.send(item.parts):
                            item.sent = True
                            break
                    ready = False
                    self._check_closing("room to send")
                    if time.monotonic() >= deadline:
                        return False
            return True
        finally:
            if stale:
                self._log.warning(
                    "dropped frames %s: the hub at %s could take them only after more than %.3gs "
                    "(request_timeout); fresh frames follow",
                    stale,
                    self.endpoint.url(),
                    self._opts.request_timeout,
                )
                self._stale.update(stale)

    def _answers(self, block: bool) -> List[Any]:
        """Answers that arrived; with ``block``, wait for the oldest frame's, retrying on a
        fresh socket after ``request_timeout``, and RequestTimeout after every retry."""
        if not block:
            return [ack for frames in self._transport.recv_pending() if (ack := self._match(frames)) is not None]
        attempts = self._opts.max_retries + 1
        held = False  # (max_retries >= 0: the loop runs and sets it)
        for attempt in range(1, attempts + 1):
            deadline = time.monotonic() + self._opts.request_timeout
            held = False
            if self._push(deadline):
                if not self._blocked():
                    return self._answers(block=False)
                while time.monotonic() < deadline:
                    self._check_closing("an acknowledgement")
                    ack = self._match(self._transport.recv(min(_SLICE, deadline - time.monotonic())))
                    if ack is not None:
                        self._acked_any = True
                        return [ack]
                    if self._transport.dropped():
                        # the connection these frames went out on dropped, and they with it:
                        # send them again once the socket has reconnected (the hub answers a
                        # frame it already has without delivering it twice)
                        for item in self._inflight:
                            item.sent = False
                        if not self._push(deadline):
                            break
                        if not self._blocked():  # (stale frames dropped: room again)
                            return self._answers(block=False)
                else:
                    # Every frame in flight went out on a connection that is still up (ZeroMQ's
                    # heartbeats would have dropped it within liveness_timeout were the hub
                    # frozen or cut off), so the hub has them and holds their answers back: its
                    # consumer is behind (fifo back-pressure) or has yet to answer
                    # (bidirectional). A fresh socket would not bring an answer sooner; the hub
                    # would only see this server disconnect (with no other server, the end of
                    # its stream) and get the frames twice. So wait on, and count the attempt.
                    # (Only where drops are watched: the foreign formats' sockets have no
                    # monitor, so there a fresh socket is still the way to resend.)
                    held = self._transport.watches_drops
            if held:
                then = ", but it is connected and holds the frames (its consumer is behind?)"
                then += ": waiting on" if attempt < attempts else ""
            else:
                then = "; retrying on a fresh socket" if attempt < attempts else ""
            self._log.log(
                logging.INFO if held else logging.WARNING,
                "no answer from the hub at %s within %.3gs (attempt %d/%d)%s",
                self.endpoint.url(),
                self._opts.request_timeout,
                attempt,
                attempts,
                then,
            )
            if held:
                continue
            self._transport.reset()
            for item in self._inflight:
                item.sent = False
        lost = [item.seq for item in self._inflight]
        self._inflight.clear()
        why = (
            "; it is connected and holds them (a consumer behind, under fifo back-pressure?), so they may still arrive"
            if held
            else " and were not delivered"
        )
        raise RequestTimeout(
            f"hub at {self.endpoint.url()} did not acknowledge frame {lost[0]} after {attempts} attempts of "
            f"{self._opts.request_timeout:g}s (request_timeout, max_retries); frames {lost}{why}"
        )

    def _match(self, frames: Optional[List[bytes]]) -> Optional[Any]:
        """The answer in ``frames`` if it acknowledges a frame in flight (removing it)."""
        if frames is None:
            return None
        try:
            ack = self._speaker.answer(frames)
        except ProtocolError as exc:
            self._log.debug("ignored a malformed answer from the hub: %s", exc)
            return None
        if not self._speaker.sequenced:
            if self._inflight:
                self._inflight.popleft()  # one frame in flight at a time: this answers it
            return ack
        if not any(item.seq == ack.seq for item in self._inflight):
            return None  # a late answer to an earlier attempt
        while self._inflight and self._inflight[0].seq <= ack.seq:
            self._inflight.popleft()  # answers come in order: earlier ones are done too
        return ack

    def _check_closing(self, what: str) -> None:
        if self._closing.is_set():
            raise ClosedError(f"server {self.server_id!r} was closed while waiting for {what}")

    def _wait(self, attempt: Callable[[float], Any], what: str) -> Any:
        """Call ``attempt(slice)`` until it returns something truthy or request_timeout passes."""
        deadline = time.monotonic() + self._opts.request_timeout
        while True:
            self._check_closing(what)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RequestTimeout(f"no {what} from {self.endpoint.url()} within {self._opts.request_timeout:g}s")
            result = attempt(min(_SLICE, remaining))
            if result:
                return result

    # -- heartbeats and goodbye ------------------------------------------------------------

    def _beat(self) -> None:
        show_name()
        interval = self._opts.heartbeat_interval
        # PUB/SUB: a hub whose filter leaves this server's topic out never sees its frames
        # (ZeroMQ drops them at the PUB socket), so there the heartbeat is the only sign of
        # life and goes out on schedule even while frames flow. PUB sends never block, so
        # waiting briefly for the lock is safe; with REQ/REP and PAIR every frame reaches
        # the hub and a send() in progress is a sign of life already.
        scheduled = self._pattern == 2
        last_beat = 0.0
        while not self._closing.wait(interval / 2):
            last = last_beat if scheduled else self._last_sent
            if time.monotonic() - last < interval:
                continue
            locked = self._lock.acquire(timeout=interval / 2) if scheduled else self._lock.acquire(blocking=False)
            if not locked:
                continue
            try:
                beat = self._speaker.heartbeat(self._seq)
                if beat is not None and not self._closing.is_set():
                    self._transport.send(beat, control=True)
                    self._last_sent = last_beat = time.monotonic()
            except Exception:  # pragma: no cover - must never kill the thread
                self._log.debug("heartbeat failed", exc_info=True)
            finally:
                self._lock.release()

    def close(self) -> None:
        """Say goodbye to the hub and release everything. Idempotent; returns within 1 s."""
        if self._closed:
            return
        self._closing.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=0.3)
        locked = self._lock.acquire(timeout=0.2)
        try:
            if self._closed:
                return
            self._closed = True
            if locked:
                self._flush()
                self._goodbye()
            # native PUB/SUB has waited for the hub's confirmation of the goodbye already:
            # lingering would only hold close() up behind a hub that is stuck or gone
            waited = self._pattern == 2 and self._speaker.sequenced
            self._transport.close(linger=_GOODBYE_LINGER if locked and not waited else 0.0)
        finally:
            if locked:
                self._lock.release()
        self._log.info("server %r closed", self.server_id)

    def _flush(self) -> None:
        """Give frames still in flight a moment to be acknowledged (REQ/REP windows). The
        last of them may not have asked for it: a heartbeat makes the hub answer it."""
        if self._inflight:
            beat = self._speaker.heartbeat(self._seq)  # (None for formats without them)
            if beat is not None:
                self._transport.send(beat, control=True)
        deadline = time.monotonic() + _FLUSH
        while self._inflight and time.monotonic() < deadline:
            frames = self._transport.recv(min(_SLICE, deadline - time.monotonic()))
            if frames is not None and self._match(frames) is not None:
                self._acked_any = True
        self._inflight.clear()

    def _goodbye(self) -> None:
        # vidgear's hub does not answer (and its receive thread fails on) a goodbye from a
        # port it never saw a frame from; our hub and imagezmq do not care.
        if self._speaker.replies and not self._speaker.sequenced and not self._acked_any:
            return
        try:
            bye = self._speaker.bye(self._seq)
            if bye is None:
                return
            confirm = bye_topic(self._speaker.session) if self._speaker.sequenced else None
            confirmed = self._transport.goodbye(bye, confirm=confirm, timeout=_GOODBYE_WAIT)
            if self._pattern == 2 and confirm is not None and not confirmed:
                self._log.debug("the hub did not confirm the goodbye within %.2gs", _GOODBYE_WAIT)
        except Exception:  # pragma: no cover
            self._log.debug("goodbye could not be sent", exc_info=True)

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(f"netgear server {self.server_id!r} was never closed", ResourceWarning, stacklevel=2)
            try:
                self.close()
            except Exception:  # pragma: no cover
                pass


class _InFlight:
    """A REQ/REP frame sent (or to send) and not yet acknowledged."""

    __slots__ = ("seq", "parts", "sent", "created")

    def __init__(self, seq: int, parts: List[Any]) -> None:
        self.seq = seq
        self.parts = parts
        self.sent = False
        self.created = time.monotonic()
