"""The exception tree.

Every error raised on purpose by netgear derives from :class:`NetGearError` and also from
the builtin a caller would naturally catch (``ValueError`` for bad configuration,
``TimeoutError`` for timeouts, ...), so ``except ValueError`` keeps working for code that
does not know about netgear.

End of stream is *not* an error: ``recv()`` returns ``None`` and iteration stops.
"""

from __future__ import annotations

__all__ = [
    "NetGearError",
    "ConfigError",
    "ProtocolError",
    "MessageTooLarge",
    "Timeout",
    "RecvTimeout",
    "RequestTimeout",
    "ClosedError",
    "TransportError",
]


class NetGearError(Exception):
    """Base class of every error netgear raises on purpose."""


class ConfigError(NetGearError, ValueError):
    """An option, argument or combination of modes is invalid.

    ``option`` names the offending option (or argument) so tools can point at it.
    """

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option


class ProtocolError(NetGearError, ValueError):
    """A message from the network is malformed, unknown or over a limit.

    ``reason`` is a short, stable token (``"bad_magic"``, ``"oversize"`` ...) used as the
    key of the per-port rejection counters in the hub's snapshot.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class MessageTooLarge(NetGearError, ValueError):
    """A frame or message given to ``send()`` is larger than the configured limit."""


class Timeout(NetGearError, TimeoutError):
    """Base class of netgear's timeouts."""


class RecvTimeout(Timeout):
    """``recv(timeout=...)`` / ``recv_packet(timeout=...)`` waited that long for nothing."""


class RequestTimeout(Timeout):
    """A REQ/REP server got no acknowledgement from the hub after every retry."""


class ClosedError(NetGearError, RuntimeError):
    """The object was closed; it cannot send any more."""


class TransportError(NetGearError, OSError):
    """ZeroMQ refused an operation (bind to a busy port, bad endpoint ...).

    The endpoint is part of the message and the ZeroMQ error is chained as ``__cause__``.
    """
