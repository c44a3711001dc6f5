"""Network namespaces for partitions and slow links: the soak script, the slow-link
benchmark and the fault tests share this.

A namespace joined to the current one by a veth pair, one /30 between them; a partition is
a pair of blackhole routes (see the users), so the link stays up and packets vanish; a slow
link is a token bucket on the namespace's end of the pair.
"""

from __future__ import annotations

from typing import List, Tuple


def veth_setup(name: str, host_if: str, ns_if: str, hub_ip: str, server_ip: str) -> List[Tuple[str, ...]]:
    """The ``ip`` commands (as argument tuples, in order) that join namespace ``name`` (already
    added) to this one: ``hub_ip`` on ``host_if`` here, ``server_ip`` on ``ns_if`` there."""
    return [
        ("link", "add", host_if, "type", "veth", "peer", "name", ns_if),
        ("link", "set", ns_if, "netns", name),
        ("addr", "add", f"{hub_ip}/30", "dev", host_if),
        ("link", "set", host_if, "up"),
        ("-n", name, "addr", "add", f"{server_ip}/30", "dev", ns_if),
        ("-n", name, "link", "set", ns_if, "up"),
        ("-n", name, "link", "set", "lo", "up"),
    ]


def shape_command(name: str, ns_if: str, mbit: float) -> List[str]:
    """The command that makes ``ns_if`` in namespace ``name`` send at ``mbit`` Mbit/s (a
    token bucket with 50 ms of queue: a congested Wi-Fi uplink). The interface's MTU must
    be at most the 16 kB burst (a veth's 1500 is)."""
    return ["ip", "netns", "exec", name, "tc", "qdisc", "replace", "dev", ns_if, "root", "tbf",
            "rate", f"{mbit}mbit", "burst", "16kb", "latency", "50ms"]
