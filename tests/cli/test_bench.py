"""Smoke test of ``netgear bench``: a short run of one scenario with its pyzmq baselines,
one of JPEG next to pyzmq decoding on threads, and one through the delaying proxy, checked
through the JSON report (the speed itself is measured by the benchmark, not asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cli_helpers import ROOT, env

pytestmark = pytest.mark.timeout(120)


def run_bench(tmp_path, only: str) -> list:
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "netgear", "bench", "--only", only, "--seconds", "0.5",
                           "--json", str(out)], capture_output=True, text=True, timeout=100, cwd=ROOT, env=env())
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(out.read_text())
    assert [r["name"] for r in rows] == [only] * len(rows)
    return rows


def test_a_saturating_scenario_is_measured_next_to_both_baselines(tmp_path):
    rows = run_bench(tmp_path, "raw-sat-reqrep-k1-vga")
    assert [r["system"] for r in rows] == ["netgear", "zmq-pushpull", "zmq-reqrep"]
    for row in rows:
        assert row["frames"] > 0 and row["mbps"] > 0 and row["hub_cpu"] > 0, row
        assert 0 < row["p50_ms"] <= row["p99_ms"], row
    best = max(r["mbps"] for r in rows[1:])
    assert rows[0]["extra"]["ratio_vs_best_zmq"] == pytest.approx(rows[0]["mbps"] / best)
    assert rows[0]["drops"] == 0  # REQ/REP fifo: back-pressure, never a drop


def test_a_pubsub_scenario_is_also_measured_next_to_bare_pubsub(tmp_path):
    rows = run_bench(tmp_path, "raw-sat-pubsub-k1-vga")
    assert [r["system"] for r in rows] == ["netgear", "zmq-pushpull", "zmq-reqrep", "zmq-pubsub"]
    for row in rows:
        assert row["frames"] > 0 and row["mbps"] > 0 and row["hub_cpu"] > 0, row
    # the target's yardstick stays the best of PUSH->PULL and REQ->REP; bare PUB->SUB is a ratio of its own
    best = max(r["mbps"] for r in rows[1:3])
    assert rows[0]["extra"]["ratio_vs_best_zmq"] == pytest.approx(rows[0]["mbps"] / best)
    assert rows[0]["extra"]["ratio_vs_zmq_pubsub"] == pytest.approx(rows[0]["mbps"] / rows[3]["mbps"])


def test_a_jpeg_scenario_is_measured_next_to_pyzmq_decoding_on_threads(tmp_path):
    rows = run_bench(tmp_path, "jpeg-sat-k4-vga-preencoded")
    assert [r["system"] for r in rows] == ["netgear", "zmq-pushpull"]
    for row in rows:  # both decode every frame they count: MB/s are decoded frames
        assert row["frames"] > 0 and row["hub_cpu"] > 0, row
        assert row["mbps"] == pytest.approx(row["fps"] * 640 * 480 * 3 / 1e6), row
        extra = row["extra"]
        assert extra["ratio_vs_one_thread_decode"] == pytest.approx(row["fps"] / extra["one_thread_decode_fps"])
    assert rows[0]["extra"]["ratio_vs_zmq"] == pytest.approx(rows[0]["fps"] / rows[1]["fps"])


def test_the_window_scenario_goes_through_the_delaying_proxy(tmp_path):
    rows = run_bench(tmp_path, "rtt20ms-reqrep-k1-vga-inflight4")
    assert [r["system"] for r in rows] == ["netgear"]
    # 10 ms each way: no frame can arrive sooner than that after it was sent
    assert rows[0]["frames"] > 0 and rows[0]["p50_ms"] >= 10, rows[0]


def test_repeat_adds_the_medians_of_the_runs(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "netgear", "bench", "--only", "raw-sat-reqrep-k1-vga", "--seconds",
                           "0.3", "--repeat", "2", "--json", str(out)], capture_output=True, text=True, timeout=110,
                          cwd=ROOT, env=env())
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(out.read_text())
    assert [r["system"] for r in rows] == ["netgear", "zmq-pushpull", "zmq-reqrep"] * 2 + ["median of 2"]
    runs, summary = [r for r in rows if r["system"] == "netgear"], rows[-1]
    assert [r["extra"]["repeat"] for r in runs] == [1, 2]
    ratios = sorted(r["extra"]["ratio_vs_best_zmq"] for r in runs)
    assert summary["extra"]["ratio_vs_best_zmq"] == pytest.approx(sum(ratios) / 2)
    assert (summary["extra"]["ratio_vs_best_zmq_min"], summary["extra"]["ratio_vs_best_zmq_max"]) == tuple(ratios)
    assert summary["fps"] == pytest.approx(sum(r["fps"] for r in runs) / 2)


def test_staggered_servers_start_a_fraction_of_a_frame_interval_apart():
    from benchmarks.bench import Scenario, _phase, scenarios

    staggered = next(sc for sc in scenarios(full=True) if sc.stagger)
    assert (staggered.servers, staggered.fps) == (8, 30)
    phases = [_phase(staggered, i) for i in range(staggered.servers)]
    assert phases == pytest.approx([i / 240 for i in range(8)])  # evenly over one interval
    in_step = Scenario("x", 8, (4, 4, 3), 1, fps=30)
    assert {_phase(in_step, i) for i in range(8)} == {0.0}


def test_repeat_below_one_is_a_usage_error():
    done = subprocess.run([sys.executable, "-m", "netgear", "bench", "--repeat", "0"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=env())
    assert done.returncode == 2 and "--repeat must be at least 1" in done.stderr


def test_codec_is_timed_in_one_and_in_two_threads(tmp_path):
    out = tmp_path / "codec.json"
    done = subprocess.run([sys.executable, "-m", "netgear", "bench", "--codec", "--seconds", "0.2", "--json", str(out)],
                          capture_output=True, text=True, timeout=100, cwd=ROOT, env=env())
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(out.read_text())
    assert [r["name"] for r in rows] == ["codec-encode-vga", "codec-decode-vga", "codec-encode-hd", "codec-decode-hd"]
    for row in rows:
        assert row["one_thread_fps"] > 0 and row["two_threads_fps"] > 0, row
        assert row["speedup"] == pytest.approx(row["two_threads_fps"] / row["one_thread_fps"])
