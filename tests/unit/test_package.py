"""Package-level promises: docs in sync with the code, no pickle, typed, quiet logging."""

from __future__ import annotations

import ast
import logging
import pathlib

import pytest

import netgear
from netgear.options import options_markdown

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "netgear"


def test_options_page_is_generated_from_the_code():
    assert (ROOT / "docs" / "options.md").read_text() == options_markdown()


def test_no_module_can_reach_pickle():
    banned = {"pickle", "cPickle", "dill", "cloudpickle", "jsonpickle", "shelve", "marshal"}
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            elif isinstance(node, ast.Attribute) and node.attr in ("recv_pyobj", "send_pyobj", "recv_serialized"):
                names = [node.attr]
            offenders += [f"{path.name}: {n}" for n in names if n in banned or n.endswith("pyobj")]
    assert offenders == []


def test_msgpack_unpacking_never_falls_back_to_objects():
    # numpy's allow_pickle would turn bytes into objects: no call may enable it.
    for path in PACKAGE.rglob("*.py"):
        assert "allow_pickle=True" not in path.read_text(), path


def test_only_transport_imports_zmq():
    importers = sorted(
        p.relative_to(PACKAGE).as_posix()
        for p in PACKAGE.rglob("*.py")
        if any(
            isinstance(n, (ast.Import, ast.ImportFrom))
            and any((a.name if isinstance(n, ast.Import) else (n.module or "")).split(".")[0] == "zmq" for a in (n.names if isinstance(n, ast.Import) else [n]))
            for n in ast.walk(ast.parse(p.read_text()))
        )
    )
    assert importers == ["transport.py"]


def test_typed_package_and_public_surface():
    assert (PACKAGE / "py.typed").exists()
    for name in netgear.__all__:
        assert hasattr(netgear, name), name


def test_library_installs_only_a_null_handler():
    handlers = logging.getLogger("netgear").handlers
    assert [type(h) for h in handlers] == [logging.NullHandler]


def test_error_tree_mixes_in_builtins():
    assert issubclass(netgear.ConfigError, ValueError)
    assert issubclass(netgear.ProtocolError, ValueError)
    assert issubclass(netgear.RecvTimeout, TimeoutError)
    assert issubclass(netgear.RequestTimeout, TimeoutError)
    assert issubclass(netgear.ClosedError, RuntimeError)
    for name in ("ConfigError", "ProtocolError", "RecvTimeout", "RequestTimeout", "ClosedError", "TransportError"):
        assert issubclass(getattr(netgear, name), netgear.NetGearError)


def test_per_message_types_stay_frozen_with_their_fast_init():
    """Packet and Decoded are built once per frame with a one-update __init__ (netgear._frozen):
    same signature and defaults as the dataclass would give, and still frozen."""
    import dataclasses
    import inspect

    from netgear.packet import Packet
    from netgear.wire import Decoded, Kind

    for cls in (Packet, Decoded):
        params = list(inspect.signature(cls).parameters.values())
        assert [p.name for p in params] == [f.name for f in dataclasses.fields(cls)]
        assert [p.default for p in params if p.default is not inspect.Parameter.empty] == [
            f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING
        ]
    packet = Packet(1, None, None, False, "cam", "t", 7, 1.0, 2.0)
    assert (packet.seq, packet.jpeg, packet.latency) == (7, None, 1.0)
    assert dataclasses.replace(packet, seq=8).seq == 8
    decoded = Decoded(Kind.FRAME, 1, 2, "cam", 3, "t", None, None, False, 10)
    assert (decoded.encoded, decoded.defer) == (None, False)
    for obj, field in ((packet, "seq"), (decoded, "seq")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, field, 0)
