"""Every example that needs no camera, run as a user would run it (and the back channel checked closely)."""

from __future__ import annotations

import importlib.util
import re
import sys
import threading
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from cli_helpers import is_blank, no_traceback, run_script, tiles  # noqa: E402

from netgear import NetGear  # noqa: E402
from netgear.sources import block_box  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def run_example(name, *args, cwd):
    done = run_script(EXAMPLES / f"{name}.py", list(args), timeout=60, cwd=cwd)
    assert done.returncode == 0, done.stderr
    no_traceback(done.stderr)
    return done.stdout.splitlines()


def test_every_example_is_tested():
    tested = {"montage", "messages", "topic_filter", "eight_cameras", "window_per_host", "back_channel"}
    assert {p.stem for p in EXAMPLES.glob("*.py")} == tested


def test_montage(tmp_path):
    out = run_example("montage", "--seconds", "1", "--snapshot", "m.png", cwd=tmp_path)
    assert out == ["montage of 2 servers written to m.png"]
    parts = tiles(tmp_path / "m.png")
    assert len(parts) == 2 and not any(is_blank(t) for t in parts)


def test_messages(tmp_path):
    out = run_example("messages", "--frames", "3", "--snapshot", "msg.png", cwd=tmp_path)
    assert len(out) == 6
    seen = {}
    for line in out:
        match = re.match(r"(\d+) (\S+): \{'text': \"I'm (\S+)\", 'frame': (\d+), 'brightness': [\d.]+\}$", line)
        assert match, line
        port, sid, name, frame = match.groups()
        assert sid == name  # the message came with its own server's frames
        seen.setdefault(sid, []).append(int(frame))
    assert seen == {"pi-kitchen": [0, 1, 2], "pc-garage": [0, 1, 2]}
    assert len(tiles(tmp_path / "msg.png")) == 2


def test_topic_filter(tmp_path):
    out = run_example("topic_filter", "--seconds", "1", cwd=tmp_path)
    counts = eval(out[0].split(":", 1)[1])  # "frames by topic: {'gate': N}"
    assert list(counts) == ["gate"] and counts["gate"] > 5
    rows = {line.split()[1]: line for line in out[1:]}
    assert set(rows) == {"cam-door", "cam-gate", "cam-yard"}  # filtered hosts are still tracked
    assert rows["cam-door"].endswith(": 0 frames delivered") and rows["cam-yard"].endswith(": 0 frames delivered")


def test_eight_cameras(tmp_path):
    out = run_example("eight_cameras", "--seconds", "1.5", "--snapshot", "wall.png", cwd=tmp_path)
    assert out[-1].startswith("8 hosts, ")
    parts = tiles(tmp_path / "wall.png")
    assert len(parts) == 8 and not any(is_blank(t) for t in parts)  # 4 x 2, one tile per host


def test_window_per_host_writes_one_frame_per_host_without_display(tmp_path):
    out = run_example("window_per_host", "--hosts", "3", "--seconds", "0.5", "--out", "frames", cwd=tmp_path)
    assert out == [f"camera-{i}: last frame written to frames/camera-{i}.png" for i in (1, 2, 3)]
    for i in (1, 2, 3):
        assert cv2.imread(str(tmp_path / "frames" / f"camera-{i}.png")).shape == (240, 320, 3)


def test_back_channel_runs(tmp_path):
    out = run_example("back_channel", "--seconds", "1.5", "--quiet-after", "1", "--out", "views", cwd=tmp_path)
    assert re.match(r"hub answered \d+ frames with a box", out[0])
    for line, name in zip(out[1:], ("host-1", "host-2")):
        assert line.startswith(f"{name}: ") and "boxes received" in line and "gone from the view on frame" in line
        assert "on frame None" not in line
    assert cv2.imread(str(tmp_path / "views" / "host-1.png")) is not None


def test_back_channel_boxes_reach_their_own_server_and_expire():
    example = load("back_channel")
    size, frames, answered_frames, ttl = (320, 240), 70, 45, 0.2
    logs = {}
    with NetGear(receive_mode=True, address="127.0.0.1", port=[0, 0], multiserver_mode=True, pattern=1,
                 bidirectional_mode=True) as hub:
        hosts = [
            threading.Thread(target=lambda i=i, p=p: logs.__setitem__(i, example.camera_host(p, f"h{i}", i, frames)))
            for i, p in enumerate(hub.ports)
        ]
        for host in hosts:
            host.start()
        finders, answered = {}, {}
        for packet in hub:  # the hub of the example, answering for the first answered_frames frames only
            finder = finders.setdefault(packet.server_id, example.MotionFinder())
            box = finder.find(packet.frame)
            count = answered.get(packet.server_id, 0)
            if box is not None and packet.seq <= answered_frames:
                assert packet.reply({"box": list(box), "ttl": ttl}) is True
                answered[packet.server_id] = count + 1
        for host in hosts:
            host.join(30)
    assert set(logs) == {0, 1}
    for seed, log in logs.items():
        other = 1 - seed
        assert len(log.received) >= answered_frames - 30  # detection starts once the background is learnt
        assert len(log.received) == answered[f"h{seed}"]  # every reply reached this server, none got lost
        for index, _, box in log.received:
            assert box == block_box(index, size, seed)  # this server's block, in this very frame
            assert box != block_box(index, size, other)
        # drawn exactly while the last box is fresh, then gone for good
        last_index, last_time, last_box = log.received[-1]
        after = [(i, t, b) for i, t, b in log.drawn if i > last_index]
        assert after, "the server must keep sending after the hub went quiet"
        for i, t, b in after:
            assert b == (last_box if t < last_time + ttl else None), (i, t - last_time)
        assert after[-1][2] is None  # the box expired
