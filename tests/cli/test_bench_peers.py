"""Smoke test of ``netgear bench --peers``: netgear, vidgear's NetGear and imagezmq measured
one after the other in the same run, checked through the JSON report (the speeds are
measured by the benchmark, not asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("vidgear.gears")
pytest.importorskip("imagezmq")

from cli_helpers import ROOT, env  # noqa: E402

pytestmark = pytest.mark.timeout(90)

SYSTEMS = ["netgear", "vidgear", "imagezmq"]
VGA_BYTES = 640 * 480 * 3


def run_peers(tmp_path, only: str) -> list:
    out = tmp_path / "peers.json"
    done = subprocess.run([sys.executable, "-m", "netgear", "bench", "--peers", "--only", only, "--seconds", "0.5",
                           "--json", str(out)], capture_output=True, text=True, timeout=80, cwd=ROOT, env=env())
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(out.read_text())
    assert [r["name"] for r in rows] == [only] * len(rows)
    assert [r["system"] for r in rows] == SYSTEMS, done.stdout + done.stderr
    for row in rows:
        assert row["frames"] > 0 and "failed" not in row["extra"] and "servers_failed" not in row["extra"], row
        assert row["mbps"] == pytest.approx(row["fps"] * VGA_BYTES / 1e6), row  # whole frames, decoded
        assert 0 < row["p50_ms"] <= row["p99_ms"], row
    netgear, vidgear, imagezmq = rows
    assert netgear["extra"]["ratio_vs_vidgear"] == pytest.approx(netgear["fps"] / vidgear["fps"])
    assert netgear["extra"]["ratio_vs_imagezmq"] == pytest.approx(netgear["fps"] / imagezmq["fps"])
    return rows


def test_raw_frames_from_four_servers_of_each_library(tmp_path):
    run_peers(tmp_path, "peers-raw-k4-vga")


def test_jpeg_frames_are_counted_once_decoded(tmp_path):
    run_peers(tmp_path, "peers-jpeg-k4-vga")


def test_every_library_goes_through_the_delaying_proxy(tmp_path):
    rows = run_peers(tmp_path, "peers-rtt20ms-k1-vga")
    for row in rows:  # 10 ms each way: no frame can arrive sooner than that after it was sent
        assert row["p50_ms"] >= 10, row


@pytest.mark.parametrize("args, message", [
    (["--only", "no-such-scenario"], "no --peers scenario matches"),
    (["--full"], "--full does not apply to --peers"),
])
def test_usage_errors(args, message):
    done = subprocess.run([sys.executable, "-m", "netgear", "bench", "--peers", *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=env())
    assert done.returncode == 2 and message in done.stderr, done.stdout + done.stderr


def test_a_slow_consumer_is_measured_by_the_age_of_its_frames(tmp_path):
    out = tmp_path / "peers.json"
    done = subprocess.run([sys.executable, "-m", "netgear", "bench", "--peers", "--only", "peers-slow-consumer",
                           "--seconds", "0.5", "--json", str(out)], capture_output=True, text=True, timeout=80,
                          cwd=ROOT, env=env())
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {r["system"]: r for r in json.loads(out.read_text())}
    assert list(rows) == ["netgear", "netgear-latest", "vidgear", "imagezmq"]
    for row in rows.values():
        assert row["frames"] > 0 and row["extra"]["age_p50_ms"] > 0, row
    # four cameras at 30 fps against a consumer of 2 frames a second: `latest` replaces
    # (and counts) the frames the consumer never takes; REQ/REP's `fifo` holds the cameras back
    assert rows["netgear-latest"]["drops"] > 0 and rows["netgear"]["drops"] == 0
    for name in ("netgear", "netgear-latest"):  # the other library's age over netgear's
        extra = rows[name]["extra"]
        for peer in ("vidgear", "imagezmq"):
            assert extra[f"ratio_vs_{peer}"] == pytest.approx(rows[peer]["extra"]["age_p50_ms"] / extra["age_p50_ms"])
