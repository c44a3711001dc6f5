"""Smoke test of the soak script (``python -m benchmarks.soak``): a short run with every
fault kind, checked through its JSON report."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from cli_helpers import ROOT, env

pytestmark = pytest.mark.timeout(90)

SECONDS = 18  # --minutes 0.3


def test_soak_smoke_run_reports_every_field_with_no_invariant_failure(tmp_path):
    out = tmp_path / "soak.json"
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "benchmarks.soak", "--minutes", "0.3", "--servers", "4",
                           "--seed", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=75, cwd=ROOT, env=env())
    wall = time.monotonic() - began
    assert done.returncode == 0, done.stdout + done.stderr
    rep = json.loads(out.read_text())
    assert rep["invariants"] == {"failures": [], "ok": True}
    assert "invariants: OK" in done.stdout
    assert set(rep) == {"config", "timing", "faults", "events", "memory", "fds", "frames", "age_ms", "rejected",
                        "receive_loop", "invariants"}

    # every fault kind was injected (partitions only where a namespace could be made, and then said why not)
    per_kind = rep["faults"]["per_kind"]
    kinds = ["kill", "freeze", "slow"] + (["partition"] if rep["config"]["netns"] else [])
    if not rep["config"]["netns"]:
        assert rep["config"]["netns_note"] and rep["config"]["netns_note"] in done.stdout
    for kind in kinds:
        assert per_kind[kind]["faults"] >= 1, f"no {kind} fault in the smoke run: {per_kind}"
    assert rep["faults"]["skipped"] == 0
    # each server cut produced exactly one left and one returned event, and nothing else happened
    events = rep["events"]
    cuts = sum(per_kind[k]["server_cuts"] for k in ("kill", "freeze", "partition"))
    assert cuts >= 2
    assert events["expected"] == {"joined": 4, "left": cuts, "returned": cuts}
    assert {k: events["observed"][k] for k in ("joined", "left", "returned")} == events["expected"]
    assert events["observed"]["restarted"] == 0 and events["unexpected"] == 0
    assert events["shutdown_left"] == {"closed": 4}
    for kind in ("kill", "freeze", "partition"):
        assert per_kind[kind]["left"] == per_kind[kind]["returned"] == per_kind[kind]["server_cuts"]

    # measurements are present and sane
    mem = rep["memory"]
    assert mem["samples"] >= SECONDS - 1 and len(mem["samples_s_mb"]) == mem["samples"]
    assert mem["slope_mb_per_hour"] is not None and mem["rss_start_mb"] > 0
    fds = rep["fds"]
    assert fds["after_close"] == fds["before_hub"] and fds["end"] - fds["start"] <= 4
    frames = rep["frames"]
    assert len(frames["per_server"]) == 4 and all(s["delivered"] > 0 for s in frames["per_server"])
    assert frames["total"] == sum(s["delivered"] for s in frames["per_server"]) and frames["out_of_order"] == 0
    ages = rep["age_ms"]
    assert ages["received_minus_sent"]["n"] == frames["total"]
    assert ages["received_minus_sent"]["p50"] <= ages["received_minus_sent"]["p99"] <= ages["received_minus_sent"]["max"]
    assert ages["at_delivery_slow"]["n"] >= 1
    assert rep["rejected"]["total"] == 0
    assert rep["receive_loop"]["error"] is None and rep["receive_loop"]["stream_ended_after_goodbyes"]
    assert SECONDS <= wall < 60, f"the smoke run took {wall:.1f} s"
