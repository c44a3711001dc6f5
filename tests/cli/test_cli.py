"""The ``netgear`` command end to end: real processes on 127.0.0.1, kernel-chosen ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import cv2
import numpy as np
import pytest

from cli_helpers import Proc, env, hub_ports, is_blank, no_traceback, run, tiles, video_info
from netgear import ConfigError, NetGear
from netgear.sources import Synthetic


def test_serve_and_receive_with_snapshot_record_and_stats(tmp_path):
    snapshot, videos = tmp_path / "wall.png", tmp_path / "videos"
    hub = Proc(["receive", "--ports", "0", "0", "--snapshot", str(snapshot), "--record", str(videos), "--stats",
                "--timeout", "20"])
    try:
        ports = hub_ports(hub.wait_line(lambda line: line.startswith("hub on ports")))
        assert hub.lines[0].startswith("hub on ports") and len(ports) == 2 and 0 not in ports
        servers = [
            Proc(["serve", "--port", str(ports[0]), "--frames", "12", "--fps", "60", "--size", "160x120",
                  "--id", "cam-a"]),
            Proc(["serve", "--port", str(ports[1]), "--frames", "7", "--fps", "60", "--size", "200x100",
                  "--id", "cam-b", "--message", '{"where": "gate"}']),
        ]
        for server, frames in zip(servers, (12, 7)):
            assert server.finish(30) == 0, server.stderr
            assert server.lines[0].startswith("serving synthetic to 127.0.0.1:")
            assert server.lines[-1] == f"sent {frames} frames; --frames {frames}"
        assert hub.finish(30) == 0, hub.stderr
    finally:
        hub.kill()
    no_traceback(hub.stderr)
    out = hub.lines
    assert f"{ports[0]} cam-a joined" in out and f"{ports[1]} cam-b joined" in out
    assert f"{ports[0]} cam-a left (closed)" in out and f"{ports[1]} cam-b left (closed)" in out
    assert out[-1] == "received 19 frames; every server is gone"
    final = out[out.index("final:") + 1:]
    assert final[0].split()[:3] == ["port", "server", "state"]
    rows = {line.split()[1]: line.split() for line in final[1:3]}
    assert rows["cam-a"][2:4] == ["closed", "12"] and rows["cam-b"][2:4] == ["closed", "7"]
    # the snapshot: two labelled, non-blank tiles side by side
    parts = tiles(snapshot)
    assert len(parts) == 2 and not any(is_blank(t) for t in parts)
    # the recordings: one file per port, every frame, the first frame's size
    assert video_info(videos / f"port-{ports[0]}.mp4") == (12, (160, 120))
    assert video_info(videos / f"port-{ports[1]}.mp4") == (7, (200, 100))
    assert f"recorded port {ports[0]}: {videos / f'port-{ports[0]}.mp4'} (12 frames)" in out


def receive_from_one_server(*hub_args: str) -> Proc:
    """``netgear receive --ports 0 HUB_ARGS`` fed by one synthetic server at 100 fps; the
    hub's process once it has ended by itself (it must, with ``--frames``)."""
    hub = Proc(["receive", "--ports", "0", *hub_args])
    try:
        (port,) = hub_ports(hub.wait_line(lambda line: line.startswith("hub on ports")))
        server = Proc(["serve", "--port", str(port), "--fps", "100", "--size", "64x48", "--pattern", "reqrep"])
        try:
            assert hub.finish(30) == 0, hub.stderr
        finally:
            server.kill()
    finally:
        hub.kill()
    return hub


def test_receive_stops_after_frames_and_montage_falls_back_without_display(tmp_path):
    snapshot = tmp_path / "one.png"
    hub = receive_from_one_server("--frames", "5", "--montage", "--snapshot", str(snapshot))
    assert hub.lines[-1] == "received 5 frames; stopped after 5 frames"
    assert "no GUI available" in hub.stderr and "Traceback" not in hub.stderr
    (tile,) = tiles(snapshot)
    assert not is_blank(tile)


def test_serve_sends_what_the_options_say(tmp_path):
    """An in-test hub checks what ``netgear serve`` puts on the wire: size, message, topic, id, count."""
    with NetGear(receive_mode=True, address="127.0.0.1", port=[0], multiserver_mode=True) as hub:
        server = Proc(["serve", "--port", str(hub.ports[0]), "--frames", "4", "--fps", "100", "--size", "96x64",
                       "--message", '{"cam": "front", "n": [1, 2]}', "--topic", "front", "--id", "pi-7"])
        try:
            packets = list(hub)
            assert server.finish(30) == 0, server.stderr
        finally:
            server.kill()
    assert len(packets) == 4
    assert {(p.server_id, p.topic) for p in packets} == {("pi-7", "front")}
    assert all(p.message == {"cam": "front", "n": [1, 2]} for p in packets)
    assert all(p.frame.shape == (64, 96, 3) and p.frame.dtype == np.uint8 for p in packets)
    assert [p.seq for p in packets] == sorted(p.seq for p in packets)


def test_serve_image_folder_and_looped_video_file(tmp_path):
    folder = tmp_path / "shots"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((40, 50, 3), 60 * i, np.uint8))
    (folder / "notes.txt").write_text("not an image")
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for frame in Synthetic((64, 48), fps=None, frames=4):
        writer.write(frame)
    writer.release()
    with NetGear(receive_mode=True, address="127.0.0.1", port=[0, 0], multiserver_mode=True) as hub:
        a, b = hub.ports
        servers = [
            Proc(["serve", "--port", str(a), "--source", str(folder), "--fps", "200", "--loop", "--frames", "7"]),
            Proc(["serve", "--port", str(b), "--source", str(video), "--fps", "200", "--loop", "--frames", "10"]),
        ]
        try:
            packets = list(hub)
            assert [s.finish(30) for s in servers] == [0, 0], [s.stderr for s in servers]
        finally:
            for s in servers:
                s.kill()
    by_port = {a: [p for p in packets if p.port == a], b: [p for p in packets if p.port == b]}
    assert [int(p.frame.mean()) for p in by_port[a]] == [0, 60, 120, 0, 60, 120, 0]
    assert len(by_port[b]) == 10 and all(p.frame.shape == (48, 64, 3) for p in by_port[b])


def test_demo_runs_streams_and_ends_by_itself(tmp_path):
    snapshot = tmp_path / "demo.png"
    done = run(["demo", "--seconds", "5", "--snapshot", str(snapshot)], timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    no_traceback(done.stderr)
    out = done.stdout.splitlines()
    assert len(hub_ports(out[0])) == 3 and "3 synthetic servers for 5s" in out[0]
    assert sum(line.endswith(" joined") for line in out) == 3
    assert sum(line.endswith(" left (closed)") for line in out) == 3
    assert out[-1].endswith("frames; every server is gone")
    received = int(out[-1].split()[1])
    assert 3 * 5 * 30 * 0.6 <= received <= 3 * 5 * 30 + 3  # 30 fps each, paced
    assert any(line.split()[:3] == ["port", "server", "state"] for line in out[1:-5])  # live table
    parts = tiles(snapshot)
    assert len(parts) == 4  # 3 servers on a 2 x 2 grid
    assert [is_blank(t) for t in parts] == [False, False, False, True]


def test_demo_without_display_writes_snapshots_to_the_temp_folder(tmp_path):
    env_tmp = tmp_path / "tmp"
    env_tmp.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "netgear", "demo", "--seconds", "1", "--servers", "2", "-q"],
        capture_output=True, text=True, timeout=60, env={**env(), "TMPDIR": str(env_tmp)},
    )
    assert done.returncode == 0, done.stderr
    path = env_tmp / "netgear-demo.png"
    assert f"no display: writing the montage to {path} every second" in done.stdout
    assert len(tiles(path)) == 2 and not any(is_blank(t) for t in tiles(path))
    assert os.listdir(env_tmp) == ["netgear-demo.png"]  # no partial files left behind


# -- errors and exit codes ---------------------------------------------------------------


def _one_error_line(done, code: int, *needles: str) -> None:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    no_traceback(done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_busy_port_is_one_line_and_exit_1():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run(["receive", "--address", "127.0.0.1", "--ports", str(port)])
    _one_error_line(done, 1, "netgear: error:", f"cannot bind tcp://127.0.0.1:{port}", "in use")


@pytest.mark.parametrize(
    "source, needle",
    [
        ("99", "camera 99: cannot open it"),
        ("{tmp}/missing.mp4", "missing.mp4: no such file or folder"),
        ("{tmp}/broken.mp4", "broken.mp4: not a readable video file"),
        ("{tmp}/empty", "empty: no image files"),
    ],
)
def test_bad_sources_are_one_line_and_exit_1(tmp_path, source, needle):
    (tmp_path / "broken.mp4").write_bytes(b"this is not a video")
    (tmp_path / "empty").mkdir()
    done = run(["serve", "--port", "1", "--source", source.format(tmp=tmp_path)])
    _one_error_line(done, 1, "netgear: error:", needle)
    assert done.stdout == ""  # failed before connecting anywhere


@pytest.mark.parametrize(
    "args, needle",
    [
        (["serve"], "--port"),
        (["serve", "--port", "1", "--size", "big"], "expected WIDTHxHEIGHT"),
        (["serve", "--port", "1", "--message", "{nope"], "not JSON"),
        (["serve", "--port", "1", "--jpeg-quality", "80", "--raw"], "not allowed with argument"),
        (["serve", "--port", "1", "--jpeg-quality", "101"], "JPEG quality is 10..100"),
        (["serve", "--port", "1", "--jpeg-quality", "5"], "JPEG quality is 10..100"),
        (["receive", "--ports", "0", "--montage", "--windows"], "choose one of --montage and --windows"),
        (["receive", "--ports", "70000"], "ports are 0..65535"),
        (["receive", "--ports", "0", "--delivery", "newest"], "invalid choice: 'newest'"),
        (["demo", "--servers", "65"], "between 1 and 64"),
        (["launch"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2(args, needle):
    done = run(args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    no_traceback(done.stderr)
    assert needle in done.stderr.splitlines()[-1]


def test_jpeg_quality_sends_jpeg_frames():
    """--jpeg-quality maps onto the core's jpeg_compression options: the hub gets JPEG."""
    with NetGear(receive_mode=True, address="127.0.0.1", port=[0], multiserver_mode=True) as hub:
        server = Proc(["serve", "--port", str(hub.ports[0]), "--frames", "3", "--size", "64x48",
                       "--jpeg-quality", "90"])
        try:
            packets = list(hub)
            assert server.finish(30) == 0, server.stderr
        finally:
            server.kill()
    expected = Synthetic((64, 48), fps=None, seed=hub.ports[0]).frame(0)
    assert len(packets) == 3 and packets[0].frame.shape == (48, 64, 3)
    assert all(p.jpeg is not None and bytes(p.jpeg[:2]) == b"\xff\xd8" for p in packets)
    assert np.abs(packets[0].frame.astype(int) - expected.astype(int)).mean() < 20  # lossy, but the same picture


def test_ctrl_c_exits_130_cleanly():
    hub = Proc(["receive", "--ports", "0"])
    try:
        hub.wait_line(lambda line: line.startswith("hub on ports"))
        hub.popen.send_signal(signal.SIGINT)
        code = hub.finish(15)
    finally:
        hub.kill()
    assert code == 130
    no_traceback(hub.stderr)
    assert hub.stderr.strip().splitlines() == ["netgear: interrupted"]
    assert hub.lines[-1] == "received 0 frames; interrupted"


@pytest.mark.parametrize("name, needle", [("missing/wall.png", "does not exist"), ("wall.xyz", "no image format")])
def test_unwritable_snapshot_fails_before_binding(tmp_path, name, needle):
    done = run(["receive", "--ports", "0", "--snapshot", str(tmp_path / name)])
    _one_error_line(done, 1, needle)
    assert done.stdout == ""


def test_receive_timeout_is_a_runtime_error():
    done = run(["receive", "--ports", "0", "--timeout", "0.5", "-q"])
    _one_error_line(done, 1, "no frame for 0.5s", "--timeout")


def test_help_shows_examples_and_python_m_works():
    top = run(["--help"])
    assert top.returncode == 0 and "examples:" in top.stdout and "netgear demo" in top.stdout
    for command in ("demo", "serve", "receive"):
        sub = run([command, "--help"])
        assert sub.returncode == 0 and "examples:" in sub.stdout, sub.stderr
    version = run(["--version"])
    assert version.returncode == 0 and version.stdout.startswith("netgear ")


def test_receive_filter_keeps_only_the_matching_server(tmp_path):
    snapshot = tmp_path / "filtered.png"
    hub = Proc(["receive", "--ports", "0", "0", "--filter", "gate", "--snapshot", str(snapshot)])
    try:
        a, b = hub_ports(hub.wait_line(lambda line: line.startswith("hub on ports")))
        servers = [
            Proc(["serve", "--port", str(a), "--frames", "6", "--fps", "100", "--size", "64x48", "--topic", "door",
                  "--id", "door-cam"]),
            Proc(["serve", "--port", str(b), "--frames", "4", "--fps", "100", "--size", "64x48", "--topic", "gate",
                  "--id", "gate-cam"]),
        ]
        assert [s.finish(30) for s in servers] == [0, 0]
        assert hub.finish(30) == 0, hub.stderr
    finally:
        hub.kill()
    assert hub.lines[-1] == "received 4 frames; every server is gone"
    final = hub.lines[hub.lines.index("final:") + 2:][:2]
    frames = {line.split()[1]: int(line.split()[3]) for line in final}
    assert frames == {"door-cam": 0, "gate-cam": 4}
    assert len(tiles(snapshot)) == 1  # the filtered-out server gets no tile


def test_receive_delivery_latest_is_applied_and_said():
    hub = receive_from_one_server("--frames", "3", "--delivery", "latest")
    assert hub.lines[1] == "delivery latest: only each server's newest frame; older ones are dropped and counted"
    assert hub.lines[-1] == "received 3 frames; stopped after 3 frames"


def test_receive_shows_newest_frames_unless_it_records(tmp_path):
    """Frames only shown (here snapshots, as a montage without a display falls back to)
    default to ``latest``, said on the second line; shown and recorded, the pattern's
    default (``fifo`` for reqrep: every frame recorded), said nowhere."""
    shown = receive_from_one_server("--frames", "3", "--snapshot", str(tmp_path / "wall.png"))
    assert shown.lines[1] == ("delivery latest: only each server's newest frame; older ones are dropped and "
                              "counted (frames shown live; --delivery fifo for every frame)")
    recorded = receive_from_one_server("--frames", "3", "--snapshot", str(tmp_path / "wall2.png"),
                                       "--record", str(tmp_path / "videos"))
    assert not any(line.startswith("delivery") for line in recorded.lines), recorded.lines
    asked = receive_from_one_server("--frames", "3", "--snapshot", str(tmp_path / "wall3.png"), "--delivery", "fifo")
    assert asked.lines[1] == "delivery fifo: every frame of each server, in order"


def test_ctrl_c_stops_the_demo_and_its_server_processes():
    demo = Proc(["demo", "--seconds", "60", "--servers", "2", "--no-stats"])
    try:
        for _ in range(2):
            demo.wait_line(lambda line: line.endswith(" joined"), timeout=30)
        demo.popen.send_signal(signal.SIGINT)
        code = demo.finish(20)
    finally:
        demo.kill()
    assert code == 130, demo.stderr
    assert demo.stderr.strip().splitlines() == ["netgear: interrupted"]
    assert sum(line.endswith(" left (closed)") for line in demo.lines) == 2  # servers said goodbye
    assert demo.lines[-1].endswith("frames; interrupted")


def test_ctrl_c_on_serve_says_goodbye_to_the_hub():
    with NetGear(receive_mode=True, address="127.0.0.1", port=[0], multiserver_mode=True) as hub:
        server = Proc(["serve", "--port", str(hub.ports[0]), "--fps", "50", "--size", "64x48", "--id", "bye"])
        try:
            assert hub.recv_packet(timeout=20) is not None
            server.popen.send_signal(signal.SIGINT)
            while hub.recv_packet(timeout=20) is not None:  # drained until the goodbye ends the stream
                pass
            assert server.finish(20) == 130
        finally:
            server.kill()
        (entry,) = hub.snapshot().servers
        assert (entry.server_id, entry.state) == ("bye", "closed")
