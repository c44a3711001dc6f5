"""``netgear serve`` / ``netgear receive`` with ``--secure``, ``--keys``, ``--key-name``,
``--hub-key`` and ``--authorized``: real processes on 127.0.0.1, kernel-chosen ports.

Numbers checked:

- end to end (REQ/REP, Ironhouse): keys made with ``netgear keys generate``; the hub
  (``receive --secure 2``) reports 1 allowed key; cam1 (``serve --secure 2 --key-name cam1
  --frames 10``) delivers exactly its 10 frames, shown under its key's name whatever its
  ``--id``; a rogue server (its own valid pair, not allow-listed) and a plain server (no
  ``--secure``), both streaming the whole time, deliver 0 frames: the hub's output never
  names them, its final table has exactly 1 row, and it received exactly 10 frames;
- the flags map onto the core's options: ``serve --secure 1 --hub-key gate`` reaches an
  in-process Stonehouse hub whose pair is named ``gate`` (3 frames, its ``--id`` kept), and
  ``receive --secure 2 --key-name gate --authorized DIR --frames 3`` takes exactly 3
  frames from an in-process Ironhouse server allowed through ``DIR``;
- 13 combinations that cannot work each exit with status 2 before printing anything, with
  one error line naming the flag, and no traceback.
"""

from __future__ import annotations

import os
import shutil
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import Proc, hub_ports, no_traceback, run
from netgear import NetGear, RequestTimeout, keys

pytestmark = pytest.mark.timeout(60)


def _final_rows(lines):
    """The rows of the final table printed by ``receive`` (after the header line)."""
    start = lines.index("final:") + 2
    end = next(i for i, line in enumerate(lines) if line.startswith("received "))
    return [line.split() for line in lines[start:end]]


def test_ironhouse_end_to_end_trusted_frames_arrive_and_unlisted_servers_deliver_nothing(tmp_path):
    folder = tmp_path / "keys"
    with ThreadPoolExecutor(3) as pool:  # three hosts making their pairs (here in one folder)
        made = list(pool.map(lambda name: run(["keys", "generate", str(folder), "--name", name]),
                             ["hub", "cam1", "rogue"]))
    assert [done.returncode for done in made] == [0, 0, 0], [done.stderr for done in made]
    (folder / "authorized").mkdir()
    shutil.copy(folder / "cam1.key", folder / "authorized" / "cam1.key")  # only cam1 is allowed

    secure = ["--secure", "2", "--keys", str(folder)]
    hub = Proc(["receive", "--ports", "0", *secure, "--timeout", "30"])
    intruders = []
    try:
        (port,) = hub_ports(hub.wait_line(lambda line: line.startswith("hub on ports")))
        assert hub.wait_line(lambda line: line.startswith("secure mode")) == \
            "secure mode 2 (ironhouse): 1 server key allowed"
        common = ["--port", str(port), "--fps", "50", "--size", "64x48"]
        intruders = [Proc(["serve", *common, *secure, "--key-name", "rogue", "--id", "rogue"]),
                     Proc(["serve", *common, "--id", "plain"])]
        for intruder in intruders:  # both are up and sending before cam1 starts
            assert intruder.wait_line(lambda line: line.startswith("serving")).startswith("serving synthetic")
        cam1 = Proc(["serve", *common, *secure, "--key-name", "cam1", "--id", "declared", "--frames", "10"])
        try:
            assert cam1.finish(30) == 0, cam1.stderr
        finally:
            cam1.kill()
        _interrupt(intruders)  # had they got in, the hub would see them leave now
        assert hub.finish(30) == 0, hub.stderr
    finally:
        _interrupt(intruders)
        hub.kill()
    no_traceback(hub.stderr)
    assert cam1.lines[0].endswith("as declared, secure mode 2 with key cam1")
    assert cam1.lines[-1] == "sent 10 frames; --frames 10"
    out = hub.lines
    assert f"{port} cam1 joined" in out and f"{port} cam1 left (closed)" in out
    assert not [line for line in out if "rogue" in line or "plain" in line or "declared" in line], out
    rows = _final_rows(out)
    assert [row[:4] for row in rows] == [[str(port), "cam1", "closed", "10"]]
    assert out[-1] == "received 10 frames; every server is gone"


def _interrupt(procs) -> None:
    for proc in procs:
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGINT)
        proc.finish(20)


def _key_folder(root: Path, hub: str, servers=("cam1",), allowed=("cam1",)) -> Path:
    for name in (hub, *servers):
        keys.generate(root, name)
    (root / "authorized").mkdir()
    for name in allowed:
        shutil.copy(root / f"{name}.key", root / "authorized" / f"{name}.key")
    return root


def test_serve_stonehouse_flags_reach_the_core_options(tmp_path):
    folder = _key_folder(tmp_path / "keys", hub="gate")
    with NetGear(receive_mode=True, address="127.0.0.1", port=[0], multiserver_mode=True, secure_mode=1,
                 custom_cert_location=str(folder), key_name="gate") as hub:
        server = Proc(["serve", "--port", str(hub.ports[0]), "--frames", "3", "--fps", "100", "--size", "64x48",
                       "--id", "front", "--secure", "stonehouse", "--keys", str(folder), "--key-name", "cam1",
                       "--hub-key", "gate"])
        try:
            packets = list(hub)
            assert server.finish(30) == 0, server.stderr
        finally:
            server.kill()
    assert [(p.server_id, p.frame.shape) for p in packets] == [("front", (48, 64, 3))] * 3


def test_receive_ironhouse_with_named_hub_key_and_allow_list_folder(tmp_path):
    folder = _key_folder(tmp_path / "keys", hub="gate", servers=("cam1", "cam2"), allowed=())
    allow = tmp_path / "allow"
    allow.mkdir()
    shutil.copy(folder / "cam2.key", allow / "cam2.key")  # KEYS/authorized is empty: only this folder counts
    hub = Proc(["receive", "--ports", "0", "--secure", "2", "--keys", str(folder), "--key-name", "gate",
                "--authorized", str(allow), "--frames", "3", "--timeout", "30"])
    try:
        (port,) = hub_ports(hub.wait_line(lambda line: line.startswith("hub on ports")))
        assert hub.wait_line(lambda line: line.startswith("secure mode")).endswith(": 1 server key allowed")
        options = dict(secure_mode=2, custom_cert_location=str(folder), hub_key="gate", request_timeout=0.5,
                       max_retries=0)
        with NetGear(address="127.0.0.1", port=port, pattern=1, multiserver_mode=True, key_name="cam2",
                     **options) as cam2:
            while hub.popen.poll() is None:
                try:
                    cam2.send(np.zeros((48, 64, 3), np.uint8))
                except RequestTimeout:  # the hub stops answering once it has its 3 frames
                    break
        assert hub.finish(30) == 0, hub.stderr
    finally:
        hub.kill()
    assert hub.lines[-1] == "received 3 frames; stopped after 3 frames"
    assert [row[1] for row in _final_rows(hub.lines)] == ["cam2"]


def test_security_flag_combinations_that_cannot_work_exit_2_naming_the_flag(tmp_path):
    folder = _key_folder(tmp_path / "keys", hub="hub", servers=("cam1",))
    bare = tmp_path / "bare"  # a hub pair, no allow-list, no server pair
    keys.generate(bare, "hub")
    loose = _key_folder(tmp_path / "loose", hub="hub")
    os.chmod(loose / "hub.key_secret", 0o644)
    k, a = str(folder), str(folder / "authorized")
    cases = [
        (["serve", "--port", "1", "--secure", "2"], "--keys DIR is required with --secure 2"),
        (["serve", "--port", "1", "--keys", k], "--keys needs --secure 1 or 2"),
        (["serve", "--port", "1", "--key-name", "cam1"], "--key-name needs --secure 1 or 2"),
        (["serve", "--port", "1", "--secure", "3"], "argument --secure: expected 0 (none), 1 (stonehouse) or 2"),
        (["serve", "--port", "1", "--secure", "2", "--keys", str(tmp_path / "nowhere")], "--keys: "),
        (["serve", "--port", "1", "--secure", "2", "--keys", k, "--key-name", "nobody"],
         "--key-name: no key pair 'nobody'"),
        (["serve", "--port", "1", "--secure", "1", "--keys", str(bare)], "--keys: no key pair 'server'"),
        (["serve", "--port", "1", "--secure", "2", "--keys", k, "--key-name", "cam1", "--hub-key", "gate"],
         "--hub-key: no hub public key"),
        (["serve", "--port", "1", "--secure", "2", "--keys", k, "--key-name", "../cam1"], "argument --key-name:"),
        (["receive", "--ports", "0", "--authorized", a], "--authorized needs --secure 2"),
        (["receive", "--ports", "0", "--secure", "1", "--keys", k, "--authorized", a],
         "--authorized is the Ironhouse allow-list: it needs --secure 2"),
        (["receive", "--ports", "0", "--secure", "2", "--keys", str(bare)], "--keys: no allow-list folder"),
        (["receive", "--ports", "0", "--secure", "1", "--keys", str(loose)], "--keys: secret key"),
    ]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda case: run(case[0]), cases))
    for (args, needle), done in zip(cases, results):
        assert done.returncode == 2, (args, done.returncode, done.stdout, done.stderr)
        no_traceback(done.stderr)
        assert done.stdout == "", (args, done.stdout)
        last = done.stderr.strip().splitlines()[-1]
        assert "error: " in last and needle in last, (args, last)
    assert "chmod 600" in results[-1].stderr
