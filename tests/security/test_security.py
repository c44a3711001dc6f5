"""secure_mode: CURVE encryption (Stonehouse) and the server allow-list (Ironhouse).

Real sockets throughout; where several servers stream at once they run in processes of
their own. Every refusal is checked as "0 frames and nothing in the hub's snapshot".
"""

from __future__ import annotations

import ast
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import procs as server_procs
from helpers import open_hub, open_server, wait_until
from netgear import ConfigError, NetGear, RequestTimeout, keys

ROOT = Path(__file__).resolve().parents[2]
FRAME = np.zeros((24, 32, 3), np.uint8)


def secure(keydir: Path, mode: int, name: str = None, **extra) -> dict:
    options = {"secure_mode": mode, "custom_cert_location": str(keydir), **extra}
    if name is not None:
        options["key_name"] = name
    return options


def frames_of(hub, server_id: str) -> int:
    return sum(s.frames for s in hub.snapshot().servers if s.server_id == server_id)


def server_ids(hub) -> set:
    return {s.server_id for s in hub.snapshot().servers if s.server_id is not None}


def quick(pattern: int) -> dict:
    """A REQ/REP server that gives up fast (a refused one never gets an answer)."""
    return {"request_timeout": 0.3, "max_retries": 0} if pattern == 1 else {}


def try_send(server, pattern: int, count: int = 5) -> None:
    for _ in range(count):
        try:
            server.send(FRAME)
        except RequestTimeout:
            assert pattern == 1
        time.sleep(0.02)


@pytest.mark.parametrize("pattern", [1, 2], ids=["reqrep", "pubsub"])
@pytest.mark.parametrize("mode", [1, 2], ids=["stonehouse", "ironhouse"])
def test_secured_stream_delivers(gears, keydir, pattern, mode):
    hub = open_hub(gears, [0], pattern, **secure(keydir, mode))
    server = open_server(gears, hub.ports[0], pattern, multiserver_mode=True, server_id="declared",
                         **secure(keydir, mode, "cam1"))
    got = []
    for i in range(10):
        server.send(np.full((24, 32, 3), i, np.uint8), message={"i": i})
        if pattern == 1 or i >= 5:  # a PUB's first frames may go before it is connected
            got.append(hub.recv_packet(timeout=5))
        else:
            time.sleep(0.05)
    # Stonehouse keeps the declared id; Ironhouse reports the key's name
    assert {p.server_id for p in got} == {"declared" if mode == 1 else "cam1"}
    for p in got:
        assert (p.frame == p.message["i"]).all()


@pytest.mark.parametrize("mode", [1, 2], ids=["stonehouse", "ironhouse"])
def test_secured_pair_delivers(gears, keydir, mode):
    hub = open_hub(gears, 0, 0, **secure(keydir, mode))
    server = open_server(gears, hub.ports[0], 0, server_id="declared", **secure(keydir, mode, "cam1"))
    server.send(FRAME, message="hello")
    packet = hub.recv_packet(timeout=5)
    assert packet.message == "hello" and packet.server_id == ("declared" if mode == 1 else "cam1")


@pytest.mark.parametrize("pattern", [1, 2], ids=["reqrep", "pubsub"])
@pytest.mark.parametrize("mode", [1, 2], ids=["stonehouse", "ironhouse"])
def test_plain_client_is_refused_while_a_trusted_one_delivers(gears, procs, keydir, pattern, mode):
    stop = procs_ctx_event()
    hub = open_hub(gears, [0], pattern, delivery="latest", **secure(keydir, mode))
    port = hub.ports[0]
    procs.append(procs_start(port, pattern, stop, salt=1, options={"server_id": "plain"}))
    procs.append(procs_start(port, pattern, stop, salt=2, options={"server_id": "trusted", **secure(keydir, mode, "cam1")}))
    trusted = "trusted" if mode == 1 else "cam1"
    wait_until(lambda: frames_of(hub, trusted) >= 20, 20, "frames from the trusted server")
    time.sleep(0.5)  # the plain server has been trying all along
    assert server_ids(hub) == {trusted}
    assert frames_of(hub, "plain") == 0
    assert all(not p.rejected for p in hub.snapshot().ports)  # not even a malformed message got in
    stop.set()


@pytest.mark.parametrize("pattern", [1, 2], ids=["reqrep", "pubsub"])
def test_unknown_key_is_refused_under_ironhouse(gears, procs, keydir, pattern):
    stop = procs_ctx_event()
    hub = open_hub(gears, [0], pattern, delivery="latest", **secure(keydir, 2))
    port = hub.ports[0]
    # the rogue has a valid key pair and the hub's public key, but is not on the allow-list
    procs.append(procs_start(port, pattern, stop, salt=1, options={"server_id": "cam2", **secure(keydir, 2, "rogue")}))
    procs.append(procs_start(port, pattern, stop, salt=2, options=secure(keydir, 2, "cam1")))
    wait_until(lambda: frames_of(hub, "cam1") >= 20, 20, "frames from cam1")
    time.sleep(0.5)
    assert server_ids(hub) == {"cam1"}
    assert all(not p.rejected for p in hub.snapshot().ports)
    stop.set()


def test_missing_or_wrong_keys_fail_closed(gears, keydir, tmp_path):
    hub = open_hub(gears, [0], 1, **secure(keydir, 2))
    port = hub.ports[0]
    # no keys at all: refused before anything is opened
    with pytest.raises(ConfigError, match="custom_cert_location"):
        NetGear(port=port, pattern=1, multiserver_mode=True, secure_mode=2)
    lonely = tmp_path / "lonely"
    keys.generate(lonely, "server")  # its own pair, but no copy of the hub's public key
    with pytest.raises(ConfigError, match="hub.key"):
        NetGear(port=port, pattern=1, multiserver_mode=True, secure_mode=2, custom_cert_location=str(lonely))
    # the wrong hub key (cam2's public key posing as the hub's): the handshake fails
    wrong = open_server(gears, port, 1, multiserver_mode=True, **secure(keydir, 2, "cam1", hub_key="cam2"), **quick(1))
    try_send(wrong, 1, 2)
    # an Ironhouse hub without its allow-list folder does not start
    shutil.rmtree(keydir / "authorized")
    with pytest.raises(ConfigError, match="authorized"):
        NetGear(port=[0], receive_mode=True, pattern=1, multiserver_mode=True, **secure(keydir, 2))
    with pytest.raises(ConfigError, match="authorized"):
        hub.reload_keys()
    assert hub.snapshot().servers == [] or server_ids(hub) == set()
    assert frames_of(hub, "cam1") == 0


def test_two_secured_hubs_in_one_process(gears, tmp_path):
    folders = []
    for name in ("a", "b"):
        root = tmp_path / name
        keys.generate(root, "hub")
        keys.generate(root, "cam")
        (root / "authorized").mkdir()
        shutil.copy(root / "cam.key", root / "authorized" / "cam.key")
        folders.append(root)
    hub_a = open_hub(gears, [0], 1, delivery="latest", **secure(folders[0], 1))
    hub_b = open_hub(gears, [0], 2, delivery="latest", **secure(folders[1], 2))
    cam_a = open_server(gears, hub_a.ports[0], 1, multiserver_mode=True, server_id="A", **secure(folders[0], 1, "cam"))
    cam_b = open_server(gears, hub_b.ports[0], 2, multiserver_mode=True, **secure(folders[1], 2, "cam"))
    # a server holding hub A's public key cannot talk to hub B
    stray = open_server(gears, hub_b.ports[0], 2, multiserver_mode=True, server_id="stray", **secure(folders[0], 2, "cam"))
    for _ in range(20):
        cam_a.send(FRAME)
        cam_b.send(FRAME)
        stray.send(FRAME)
        time.sleep(0.01)
    assert hub_a.recv_packet(timeout=5).server_id == "A"
    assert hub_b.recv_packet(timeout=5).server_id == "cam"
    time.sleep(0.3)
    assert server_ids(hub_a) == {"A"} and server_ids(hub_b) == {"cam"}


def test_revoked_server_is_refused_within_a_second_others_unaffected(gears, procs, keydir):
    stop_cam1, stop_cam2 = procs_ctx_event(), procs_ctx_event()
    hub = open_hub(gears, [0], 1, delivery="latest", **secure(keydir, 2))
    port = hub.ports[0]
    procs.append(procs_start(port, 1, stop_cam1, salt=1, options=secure(keydir, 2, "cam1")))
    cam2 = procs_start(port, 1, stop_cam2, salt=2, options=secure(keydir, 2, "cam2"))
    procs.append(cam2)
    wait_until(lambda: frames_of(hub, "cam1") >= 10 and frames_of(hub, "cam2") >= 10, 20, "both servers")
    stop_cam2.set()
    cam2.join(10)
    before = frames_of(hub, "cam2")
    (keydir / "authorized" / "cam2.key").unlink()
    assert hub.reload_keys() == 1
    revoked_at = time.monotonic()
    # cam2 tries again right away, on new connections, for a second
    with NetGear(address="127.0.0.1", port=port, pattern=1, multiserver_mode=True,
                 **secure(keydir, 2, "cam2"), **quick(1)) as again:
        assert time.monotonic() - revoked_at < 1.0
        deadline = revoked_at + 1.0
        cam1_then = frames_of(hub, "cam1")
        while time.monotonic() < deadline:
            with pytest.raises(RequestTimeout):
                again.send(FRAME)
    assert frames_of(hub, "cam2") == before
    wait_until(lambda: frames_of(hub, "cam1") >= cam1_then + 10, 5, "cam1 still streaming")
    assert hub.snapshot().server(port, "cam1").state == "alive"
    # put the key back: cam2 is welcome again
    shutil.copy(keydir / "cam2.key", keydir / "authorized" / "cam2.key")
    assert hub.reload_keys() == 2
    with NetGear(address="127.0.0.1", port=port, pattern=1, multiserver_mode=True, **secure(keydir, 2, "cam2")) as back:
        back.send(FRAME)
    assert frames_of(hub, "cam2") == before + 1
    stop_cam1.set()


def test_identity_comes_from_the_key(gears, procs, keydir):
    stop_liar, stop_honest = procs_ctx_event(), procs_ctx_event()
    hub = open_hub(gears, [0], 1, **secure(keydir, 2))
    port = hub.ports[0]
    # cam1 claims to be cam2 in every header (and will say goodbye as cam2)
    liar = procs_start(port, 1, stop_liar, salt=1, options={"server_id": "cam2", **secure(keydir, 2, "cam1")})
    procs.append(liar)
    procs.append(procs_start(port, 1, stop_honest, salt=2, options=secure(keydir, 2, "cam2")))
    wait_until(lambda: frames_of(hub, "cam1") >= 10 and frames_of(hub, "cam2") >= 10, 20, "both servers")
    seen = {}
    while len(seen) < 2:
        packet = hub.recv_packet(timeout=5)
        seen[packet.server_id] = packet
    for server_id, salt in (("cam1", 1), ("cam2", 2)):
        packet = seen[server_id]
        assert (packet.frame == server_procs.make_frame(packet.message["i"], (24, 32, 3), "uint8", salt)).all(), server_id
    stop_liar.set()  # its goodbye names cam2; it must close cam1 only
    liar.join(10)
    wait_until(lambda: hub.snapshot().server(port, "cam1").state == "closed", 5, "cam1 closed")
    time.sleep(0.3)
    assert hub.snapshot().server(port, "cam2").state == "alive"
    stop_honest.set()


def test_ironhouse_pubsub_goodbye_is_confirmed_whatever_id_the_server_claims(gears, keydir):
    """Under Ironhouse the hub names a server by its key, not by the id it claims; the
    goodbye's confirmation goes by the server's session, so close() does not wait out its
    half second and the hub reports the key's name closed."""
    hub = open_hub(gears, [0], 2, **secure(keydir, 2))
    server = NetGear(address="127.0.0.1", port=hub.ports[0], pattern=2, multiserver_mode=True,
                     server_id="declared", **secure(keydir, 2, "cam1"))
    try:
        wait_until(lambda: hub.snapshot().server(hub.ports[0], "cam1") is not None, 10, "cam1 alive")
    finally:
        began = time.monotonic()
        server.close()
        took = time.monotonic() - began
    assert took < 0.3, f"close() took {took:.2f}s: the confirmation did not come"
    wait_until(lambda: hub.snapshot().server(hub.ports[0], "cam1").state == "closed", 5, "cam1 closed")


def test_secret_key_permissions(tmp_path):
    public, secret = keys.generate(tmp_path / "k", "hub")
    assert stat.S_IMODE(os.stat(tmp_path / "k").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert keys.load_secret(secret).secret is not None
    keys.generate(tmp_path / "k", "server")
    os.chmod(secret, 0o640)
    with pytest.raises(ConfigError) as error:
        NetGear(port=[0], receive_mode=True, pattern=1, multiserver_mode=True, secure_mode=1,
                custom_cert_location=str(tmp_path / "k"))
    assert str(secret) in str(error.value) and "chmod 600" in str(error.value)
    os.chmod(tmp_path / "k" / "server.key_secret", 0o604)
    with pytest.raises(ConfigError, match="server.key_secret"):
        NetGear(port=5555, pattern=1, multiserver_mode=True, secure_mode=1, custom_cert_location=str(tmp_path / "k"))
    with pytest.raises(ConfigError, match="exists already"):
        keys.generate(tmp_path / "k", "hub")


def test_keys_cli(tmp_path):
    import zmq.auth  # the files are ZeroMQ certificates

    folder = tmp_path / "keys"

    def run(*args):
        return subprocess.run([sys.executable, "-m", "netgear", "keys", *args], capture_output=True, text=True,
                              timeout=30, cwd=ROOT)

    done = run("generate", str(folder), "--name", "hub")
    assert done.returncode == 0, done.stderr
    assert "hub.key_secret" in done.stdout
    assert run("generate", str(folder)).returncode == 0  # default name: server
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(folder / "server.key_secret").st_mode) == 0o600
    public, secret = zmq.auth.load_certificate(str(folder / "hub.key_secret"))
    assert zmq.auth.load_certificate(str(folder / "hub.key"))[0] == public and secret
    listed = run("list", str(folder))
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["hub", "server"]
    assert lines[0].split("\t")[1] == public.decode() and lines[0].endswith("secret 0600")
    again = run("generate", str(folder), "--name", "hub")
    assert again.returncode == 2 and "exists already" in again.stderr and "Traceback" not in again.stderr
    os.chmod(folder / "hub.key_secret", 0o644)
    assert "TOO OPEN" in run("list", str(folder)).stdout


def test_no_module_unpickles():
    """Nothing in netgear can turn network bytes into objects through pickle."""
    for path in (ROOT / "netgear").rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                names = []
            assert not {n.split(".")[0] for n in names} & {"pickle", "marshal", "dill", "cloudpickle", "shelve"}, path
            if isinstance(node, ast.keyword) and node.arg == "allow_pickle":
                assert isinstance(node.value, ast.Constant) and node.value.value is False, path
            if isinstance(node, ast.Attribute) and node.attr in ("recv_pyobj", "recv_serialized", "send_pyobj"):
                raise AssertionError(f"{path}: {node.attr}")


# ------------------------------------------------------------------------------ helpers


def procs_ctx_event():
    return server_procs.CTX.Event()


def procs_start(port: int, pattern: int, stop, *, salt: int, options: dict):
    return server_procs.start(server_procs.stream, port, pattern, stop=stop, fps=50.0, salt=salt, options=options)
