"""Frozen statistics snapshots of a hub (see ``NetGear.snapshot()``)."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, Optional, Tuple

__all__ = ["ServerStats", "PortStats", "HubSnapshot"]


@dataclass(frozen=True)
class ServerStats:
    """One server (or one configured port nobody has connected to yet: ``server_id`` None)."""

    port: int
    server_id: Optional[str]
    state: str
    since: float
    age: Optional[float]
    reason: Optional[str]
    topic: Optional[str] = None
    frames: int = 0
    messages: int = 0
    bytes: int = 0
    queued: int = 0
    dropped: int = 0
    filtered: int = 0
    duplicates: int = 0
    lost: int = 0
    last_seq: Optional[int] = None


@dataclass(frozen=True)
class PortStats:
    """One bound port: its endpoint and the malformed messages it rejected, by reason."""

    port: int
    endpoint: str
    rejected: Mapping[str, int]

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


@dataclass(frozen=True)
class HubSnapshot:
    """Everything the hub knows at one instant; safe to keep and compare."""

    at: float
    pattern: str
    ended: bool
    ports: Tuple[PortStats, ...]
    servers: Tuple[ServerStats, ...]

    def alive(self) -> Tuple[ServerStats, ...]:
        return tuple(s for s in self.servers if s.state == "alive")

    def server(self, port: int, server_id: Optional[str] = None) -> Optional[ServerStats]:
        """The entry for ``port`` (and ``server_id`` if given); None if there is none."""
        for s in self.servers:
            if s.port == port and (server_id is None or s.server_id == server_id):
                return s
        return None

    def rejected(self, port: int) -> Mapping[str, int]:
        for p in self.ports:
            if p.port == port:
                return p.rejected
        return MappingProxyType({})
