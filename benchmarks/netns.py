"""Network namespaces for partitions: the soak script and the fault tests share this.

A namespace joined to the current one by a veth pair, one /30 between them; a partition is
a pair of blackhole routes (see the users), so the link stays up and packets vanish.
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
