"""netgear: gather video frames and messages from many camera hosts into one hub over ZeroMQ.

>>> from netgear import NetGear
>>> hub = NetGear(receive_mode=True, port=[5566, 5567], multiserver_mode=True)  # doctest: +SKIP
"""

from __future__ import annotations

import logging

from .errors import (
    ClosedError,
    ConfigError,
    MessageTooLarge,
    NetGearError,
    ProtocolError,
    RecvTimeout,
    RequestTimeout,
    Timeout,
    TransportError,
)
from .gear import NetGear
from .liveness import Event, State
from .packet import Packet
from .stats import HubSnapshot, PortStats, ServerStats

__version__ = "0.1.0"

__all__ = [
    "NetGear",
    "Packet",
    "HubSnapshot",
    "PortStats",
    "ServerStats",
    "Event",
    "State",
    "NetGearError",
    "ConfigError",
    "ProtocolError",
    "MessageTooLarge",
    "Timeout",
    "RecvTimeout",
    "RequestTimeout",
    "ClosedError",
    "TransportError",
    "__version__",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
