"""netgear soak: servers in separate processes stream into one hub for minutes or hours
while a seeded schedule of faults runs, and the hub's memory, file descriptors, liveness
events and deliveries are recorded and checked.

Faults: SIGKILL of a server and its restart (same server id), SIGSTOP for a few seconds
then SIGCONT, network partitions of a few seconds (some servers run in a network
namespace behind a veth pair; a partition blackholes both directions), and slow-consumer
periods (the hub's consumer sleeps between recv calls; the hub uses delivery="latest").

    python -m benchmarks.soak                          # 3 minutes, seed 0, 8 servers
    python -m benchmarks.soak --hours 8 --json soak.json
    python -m benchmarks.soak --seconds 20 --servers 4 # a smoke run
    python -m benchmarks.soak --no-netns               # no partitions (no namespaces)

Exit status: 0 when every invariant held, 1 when one broke (listed at the end), 2 usage.
Needs root (or CAP_NET_ADMIN) and `ip` for the partitions; without them it says so and
runs the other faults.
"""

from __future__ import annotations

import argparse
import datetime
import heapq
import itertools
import json
import math
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from benchmarks.netns import veth_setup
from benchmarks.procstat import open_fds, rss_mb

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (240, 320, 3)
BOUND_SLACK = 0.5  # documented detection slack over liveness_timeout
LOOP_GAP_LIMIT = 5.0  # the consumer must come back from recv at least this often (s)
STALE = 1.0  # a delivered frame older than this (received_at - sent_at) is counted as stale
RECOVER = 8.0  # seconds a faulted server is left alone after its fault ends (schedule)
KINDS = ("kill", "freeze", "partition", "slow")


# ------------------------------------------------------------------------- server process


def serve(argv: List[str]) -> int:
    """One server: stream SHAPE frames at ``--fps`` until SIGTERM, then close (goodbye)."""
    p = argparse.ArgumentParser()
    p.add_argument("--address")
    p.add_argument("--port", type=int)
    p.add_argument("--pattern", type=int)
    p.add_argument("--fps", type=float)
    p.add_argument("--id")
    p.add_argument("--slot", type=int)
    p.add_argument("--lifetime", type=float)
    a = p.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    parent = os.getppid()
    from netgear import NetGear

    frame = np.random.default_rng(a.slot).integers(0, 256, size=SHAPE, dtype=np.uint8)
    deadline = time.monotonic() + a.lifetime
    pid = os.getpid()
    with NetGear(address=a.address, port=a.port, pattern=a.pattern, multiserver_mode=True, server_id=a.id) as gear:
        i = 0
        next_at = time.monotonic()
        while not stop.is_set() and time.monotonic() < deadline and os.getppid() == parent:
            try:
                gear.send(frame, message={"i": i, "p": pid})
            except Exception:  # RequestTimeout while partitioned (REQ/REP): keep going
                pass
            i += 1
            next_at += 1.0 / a.fps
            delay = next_at - time.monotonic()
            if delay < -1.0:  # woke from SIGSTOP: no burst to catch up
                next_at = time.monotonic()
            elif delay > 0:
                stop.wait(delay)
    return 0


# ------------------------------------------------------------------------- measurements


class Hist:
    """Log-spaced histogram of seconds (1 % wide bins from 10 µs): fixed memory however
    long the run, percentiles to 1 %, exact maximum."""

    LO, RATIO, BINS = 1e-5, 1.01, 2000  # up to 1e-5 * 1.01**2000 ~ 4e3 s
    _LOG = math.log(RATIO)

    def __init__(self) -> None:
        self.bins = [0] * self.BINS
        self.n = 0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        i = int(math.log(seconds / self.LO) / self._LOG) if seconds > self.LO else 0
        self.bins[min(i, self.BINS - 1)] += 1
        self.n += 1
        self.max = max(self.max, seconds)

    def pct(self, q: float) -> Optional[float]:
        """Upper edge of the bin holding the q-th percentile (None when empty)."""
        if not self.n:
            return None
        target, seen = q / 100 * self.n, 0
        for i, count in enumerate(self.bins):
            seen += count
            if seen >= target and count:
                return min(self.LO * self.RATIO ** (i + 1), self.max)
        return self.max

    def summary_ms(self) -> Dict[str, Any]:
        def ms(v: Optional[float]) -> Optional[float]:
            return None if v is None else round(v * 1000, 2)

        return {"n": self.n, "p50": ms(self.pct(50)), "p99": ms(self.pct(99)), "max": ms(self.max if self.n else None)}


# ------------------------------------------------------------------------- network namespace


class Netns:
    """Servers in a namespace of their own reach the hub over a veth pair; ``cut`` adds
    blackhole routes on both sides (the link stays up, packets vanish), ``heal`` removes them."""

    def __init__(self) -> None:
        pid = os.getpid()
        n = pid % 16384
        self.name = f"ngsoak{pid}"
        self.host_if, self.ns_if = f"ngsh{pid % 10000000}", f"ngsn{pid % 10000000}"
        self.hub_ip = f"10.124.{n >> 6}.{(n & 63) * 4 + 1}"
        self.server_ip = f"10.124.{n >> 6}.{(n & 63) * 4 + 2}"
        self.made = False
        self.cut_now = False

    @staticmethod
    def _ip(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)

    def up(self) -> Optional[str]:
        """Create it; returns why not (None when it worked)."""
        try:
            made = self._ip("netns", "add", self.name)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"`ip` unavailable: {exc}"
        if made.returncode != 0:
            return f"`ip netns add` failed: {made.stderr.strip()}"
        self.made = True
        for args in veth_setup(self.name, self.host_if, self.ns_if, self.hub_ip, self.server_ip):
            done = self._ip(*args)
            if done.returncode != 0:
                self.down()
                return f"`ip {' '.join(args)}` failed: {done.stderr.strip()}"
        return None

    def prefix(self) -> List[str]:
        return ["ip", "netns", "exec", self.name]

    def cut(self) -> None:
        for args in (("route", "add", "blackhole", f"{self.server_ip}/32"),
                     ("-n", self.name, "route", "add", "blackhole", f"{self.hub_ip}/32")):
            done = self._ip(*args)
            if done.returncode != 0:
                raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
        self.cut_now = True

    def heal(self) -> None:
        self._ip("route", "del", "blackhole", f"{self.server_ip}/32")
        self._ip("-n", self.name, "route", "del", "blackhole", f"{self.hub_ip}/32")
        self.cut_now = False

    def down(self) -> None:
        if self.cut_now:
            self.heal()
        if self.made:
            self._ip("link", "del", self.host_if)  # deletes its peer too
            self._ip("netns", "del", self.name)
            self.made = False


# ------------------------------------------------------------------------- schedule


class Cut:
    """What the hub reported for one server of one fault (slots: no allocation while running)."""

    __slots__ = ("left_after", "left_reason", "back_after", "restarted")

    def __init__(self) -> None:
        self.left_after: Optional[float] = None  # seconds from the fault's start to "left"
        self.left_reason: Optional[str] = None
        self.back_after: Optional[float] = None  # seconds from its end to "returned"
        self.restarted = False

    def report(self) -> Dict[str, Any]:
        r = lambda v: None if v is None else round(v, 3)  # noqa: E731
        return {"left_after_s": r(self.left_after), "left_reason": self.left_reason,
                "back_after_s": r(self.back_after), "restarted": self.restarted}


@dataclass
class Fault:
    at: float  # seconds after the start of the run
    kind: str
    slots: Tuple[int, ...]
    hold: float  # kill: seconds until the restart; others: seconds the fault lasts
    # filled while running (monotonic seconds); per slot for the liveness matching
    started: Optional[float] = None
    resumed: Optional[float] = None
    skipped: Optional[str] = None
    cuts: Dict[int, "Cut"] = field(default_factory=dict)  # per slot, made up front

    def __post_init__(self) -> None:
        self.cuts = {k: Cut() for k in self.slots}

    def report(self) -> Dict[str, Any]:
        return {"at_s": round(self.at, 2), "kind": self.kind, "slots": list(self.slots), "hold_s": round(self.hold, 2),
                "skipped": self.skipped,
                "cuts": {str(k): c.report() for k, c in self.cuts.items()}}


def make_schedule(seed: int, duration: float, servers: int, ns_slots: Tuple[int, ...]) -> List[Fault]:
    """Faults at seeded times. The first cycle has one fault of each kind (so a short run
    covers every kind); a server is left alone for RECOVER s after each of its faults, and
    at least one server is never faulted at any moment (else the stream would end)."""
    rng = random.Random(seed)
    kinds = [k for k in KINDS if k != "partition" or ns_slots]
    first = list(kinds)
    rng.shuffle(first)
    free_at = [0.0] * servers
    slow_free = 0.0
    t = min(5.0, duration * 0.1)
    last = duration - min(10.0, duration * 0.2)  # faults end before this
    out: List[Fault] = []
    while t < last:
        opening = bool(first)
        kind = first.pop(0) if opening else rng.choices(kinds, weights=[3, 3, 2, 2][: len(kinds)])[0]
        placed = False
        if kind == "slow":
            hold = rng.uniform(4.0, 8.0)
            if t >= slow_free and t + hold <= last:
                out.append(Fault(t, kind, (), hold))
                slow_free = t + hold + 1.0
                placed = True
        else:
            hold = rng.uniform(0.2, 1.0) if kind == "kill" else rng.uniform(3.0, 6.0)
            free = [s for s in range(servers) if free_at[s] <= t]
            if kind == "partition":
                victims = tuple(ns_slots) if all(s in free for s in ns_slots) else ()
            else:
                # the opening cycle leaves the namespace's servers for its partition
                pool = [s for s in free if not (opening and s in ns_slots)] or free
                victims = (rng.choice(pool),) if pool else ()
            if victims and len(free) - len(victims) >= 1 and t + hold <= last:
                out.append(Fault(t, kind, victims, hold))
                for s in victims:
                    free_at[s] = t + hold + RECOVER
                placed = True
        if opening and not placed:
            first.insert(0, kind)  # try again at the next step
        t += rng.uniform(1.0, 2.0) if first else rng.uniform(2.0, 6.0)
    return out


# ------------------------------------------------------------------------- the hub side


@dataclass
class Slot:
    index: int
    port: int
    server_id: str
    in_ns: bool
    proc: Optional[subprocess.Popen] = None
    fault: Optional[Fault] = None  # the latest fault injected on it
    frames: int = 0
    last_pid: int = 0
    last_i: int = -1
    out_of_order: int = 0
    joined: bool = False
    stale: int = 0  # frames delivered more than STALE seconds after they were sent


class Consumer(threading.Thread):
    """The hub's consumer: recv_packet in a loop (sleeping between calls during slow
    periods), recording into fixed-size counters, and matching liveness events to faults."""

    def __init__(self, hub: Any, slots: List[Slot], slow_sleep: float) -> None:
        super().__init__(name="soak-recv", daemon=True)
        self.hub = hub
        self.by_port = {s.port: s for s in slots}
        self.slow_sleep = slow_sleep
        self.slow_until = 0.0
        self.shutting_down = False
        self.stop_flag = False
        self.error: Optional[str] = None
        self.ended_at: Optional[float] = None
        self.beat = time.monotonic()
        self.max_gap = 0.0
        self.age_all, self.age_slow = Hist(), Hist()
        self.deliv_all, self.deliv_slow = Hist(), Hist()
        self.oldest: Tuple[float, int, int, float] = (0.0, -1, 0, 0.0)  # age, slot, i, monotonic when
        self.kinds: Dict[str, int] = {k: 0 for k in ("joined", "left", "returned", "restarted", "duplicate", "ended")}
        self.left_reasons: Dict[str, int] = {}
        self.final_left: Dict[str, int] = {}
        self.unexpected: List[str] = []  # first few events no fault explains
        self.unexpected_count = 0
        self.stale_after: Dict[str, int] = {}  # stale frames by the kind of the server's latest fault

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # the report says so; the main thread decides
            self.error = f"{type(exc).__name__}: {exc}"

    def _loop(self) -> None:
        from netgear import RecvTimeout

        while not self.stop_flag:
            slow = time.monotonic() < self.slow_until
            if slow:
                time.sleep(self.slow_sleep)
            try:
                packet = self.hub.recv_packet(timeout=0.25)
            except RecvTimeout:
                packet = None
            else:
                if packet is None:
                    self.ended_at = time.monotonic()
            now = time.monotonic()
            self.max_gap = max(self.max_gap, now - self.beat)
            self.beat = now
            if packet is not None:
                self._frame(packet, slow)
            for event in self.hub.pop_events():
                self._event(event)
            if self.ended_at is not None:
                return

    def _frame(self, packet: Any, slow: bool) -> None:
        slot = self.by_port[packet.port]
        slot.frames += 1
        msg = packet.message
        if slot.last_pid == msg["p"] and msg["i"] <= slot.last_i:
            slot.out_of_order += 1
        slot.last_pid, slot.last_i = msg["p"], msg["i"]
        age = packet.received_at - packet.sent_at
        at_delivery = time.time() - packet.sent_at
        self.age_all.add(age)
        if age > STALE:
            slot.stale += 1
            kind = slot.fault.kind if slot.fault is not None else "none"
            self.stale_after[kind] = self.stale_after.get(kind, 0) + 1
        if age > self.oldest[0]:
            self.oldest = (age, slot.index, msg["i"], time.monotonic())
        self.deliv_all.add(at_delivery)
        if slow:
            self.age_slow.add(age)
            self.deliv_slow.add(at_delivery)

    def _event(self, e: Any) -> None:
        self.kinds[e.kind] = self.kinds.get(e.kind, 0) + 1
        if e.kind == "left":
            self.left_reasons[e.reason] = self.left_reasons.get(e.reason, 0) + 1
        if self.shutting_down:
            if e.kind == "left":
                self.final_left[e.reason] = self.final_left.get(e.reason, 0) + 1
            elif e.kind != "ended":
                self._unexpected(e)
            return
        slot = self.by_port.get(e.port) if e.port is not None else None
        fault = slot.fault if slot is not None else None
        if e.kind == "joined" and slot is not None and not slot.joined:
            slot.joined = True
            return  # the first join of each server
        if fault is None or fault.started is None or e.at < fault.started:
            self._unexpected(e)
            return
        cut = fault.cuts[slot.index]
        if e.kind == "left" and cut.left_after is None and cut.back_after is None:
            cut.left_after = e.at - fault.started
            cut.left_reason = e.reason
        elif e.kind == "restarted" and cut.left_after is None and cut.back_after is None:
            cut.restarted = True  # back without having been reported gone
            cut.back_after = e.at - (fault.resumed or fault.started)
        elif e.kind in ("returned", "joined") and cut.left_after is not None and cut.back_after is None:
            cut.back_after = e.at - (fault.resumed if fault.resumed is not None else e.at)
        else:
            self._unexpected(e)

    def _unexpected(self, e: Any) -> None:
        self.unexpected_count += 1
        if len(self.unexpected) < 20:
            self.unexpected.append(f"{e.kind} port {e.port} {e.server_id} reason {e.reason}")


class Soak:
    def __init__(self, args: argparse.Namespace, duration: float) -> None:
        self.args = args
        self.duration = duration
        self.netns: Optional[Netns] = None
        self.netns_note: Optional[str] = None
        self.logdir = Path(tempfile.mkdtemp(prefix="netgear-soak-"))
        self.slots: List[Slot] = []
        self.failures: List[str] = []

    # -- servers ---------------------------------------------------------------------

    def spawn(self, slot: Slot, address: str) -> None:
        cmd = [sys.executable, "-m", "benchmarks.soak", "--serve", "--address", address, "--port", str(slot.port),
               "--pattern", str(self.args.pattern), "--fps", str(self.args.fps), "--id", slot.server_id,
               "--slot", str(slot.index), "--lifetime", str(self.duration + 600)]
        if slot.in_ns:
            assert self.netns is not None
            cmd = self.netns.prefix() + cmd
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
        with open(self.logdir / f"server-{slot.index}.log", "ab") as log:  # closed here: no fd kept
            slot.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd=ROOT)

    def signal(self, slot: Slot, sig: int) -> None:
        if slot.proc is not None and slot.proc.poll() is None:
            os.kill(slot.proc.pid, sig)

    # -- the run ---------------------------------------------------------------------

    def run(self) -> Dict[str, Any]:
        a = self.args
        if a.no_netns:
            self.netns_note = "--no-netns: partitions skipped"
        else:
            self.netns = Netns()
            why = self.netns.up()
            if why is not None:
                self.netns, self.netns_note = None, f"network namespaces unavailable ({why}): partitions skipped"
        if self.netns_note:
            print(f"note: {self.netns_note}", flush=True)
        try:
            return self._run()
        finally:
            for slot in self.slots:
                if slot.proc is not None and slot.proc.poll() is None:
                    self.signal(slot, signal.SIGCONT)
                    slot.proc.kill()
                    slot.proc.wait(10)
            if self.netns is not None:
                self.netns.down()

    def _run(self) -> Dict[str, Any]:
        from netgear import NetGear

        a = self.args
        hub_ip = self.netns.hub_ip if self.netns else "127.0.0.1"
        n_ns = max(1, a.servers // 4) if self.netns else 0
        ns_slots = tuple(range(a.servers - n_ns, a.servers))
        schedule = make_schedule(a.seed, self.duration, a.servers, ns_slots)
        started_wall = datetime.datetime.now().astimezone()
        load_start = os.getloadavg()
        fds_before = open_fds()
        wall0 = time.monotonic()
        hub = NetGear(address=hub_ip, port=[0] * a.servers, pattern=a.pattern, receive_mode=True,
                      multiserver_mode=True, delivery="latest")
        liveness_timeout = 1.5  # the default, which the soak does not change
        bound = liveness_timeout + BOUND_SLACK
        try:
            self.slots = [Slot(k, port, f"soak-{k}", k in ns_slots) for k, port in enumerate(hub.ports)]
            consumer = Consumer(hub, self.slots, a.slow_sleep)
            consumer.start()
            for slot in self.slots:
                self.spawn(slot, hub_ip)
            deadline = time.monotonic() + 90
            while len(hub.snapshot().alive()) < a.servers:
                if time.monotonic() > deadline or consumer.error or consumer.ended_at:
                    raise RuntimeError(f"only {len(hub.snapshot().alive())} of {a.servers} servers joined within 90 s "
                                       f"(server logs in {self.logdir})")
                time.sleep(0.05)
            t0 = time.monotonic()
            startup_s = t0 - wall0
            print(f"{a.servers} servers joined in {startup_s:.1f} s; soaking for {self.duration:.0f} s "
                  f"({len(schedule)} faults scheduled)", flush=True)
            rss_start, fds_start = rss_mb(), open_fds()
            n_samples = int(self.duration + 300)
            times = np.full(n_samples, np.nan)
            rss = np.full(n_samples, np.nan)
            n = 0
            actions: List[Tuple[float, int, Any]] = []
            order = itertools.count()
            for fault in schedule:
                heapq.heappush(actions, (t0 + fault.at, next(order), lambda f=fault: self._start(f, consumer, actions, order, hub)))
            end = t0 + self.duration
            next_sample = t0
            last_print = t0
            while True:
                now = time.monotonic()
                if now >= next_sample and n < n_samples:
                    times[n], rss[n] = now - t0, rss_mb()
                    n += 1
                    next_sample += 1.0
                while actions and actions[0][0] <= now:
                    heapq.heappop(actions)[2]()
                if consumer.error or consumer.ended_at is not None or not consumer.is_alive():
                    break
                if now >= end and not actions:
                    break
                if now - last_print >= 60:
                    last_print = now
                    print(f"  {now - t0:7.0f} s  rss {rss[n - 1]:.1f} MB  fds {open_fds()}  frames "
                          f"{sum(s.frames for s in self.slots)}  load {os.getloadavg()[0]:.1f}", flush=True)
                wake = min([next_sample, end] + ([actions[0][0]] if actions else []))
                time.sleep(max(0.0, min(0.2, wake - time.monotonic())))
            run_end = time.monotonic()
            # settle: every server alive again, every fault's return seen
            settle_deadline = time.monotonic() + a.settle
            while time.monotonic() < settle_deadline and consumer.is_alive():
                alive = len(hub.snapshot().alive()) == a.servers
                pending = [f for f in schedule if f.started is not None and f.kind != "slow"
                           and any(c.back_after is None for c in f.cuts.values())]
                if alive and not pending:
                    break
                time.sleep(0.05)
            settle_s = time.monotonic() - run_end
            snap = hub.snapshot()
            rss_end, fds_end = rss_mb(), open_fds()
            all_alive_at_end = len(snap.alive()) == a.servers
            # shutdown: every server says goodbye, the stream ends by itself
            shutdown_at = time.monotonic()
            consumer.shutting_down = True
            for slot in self.slots:
                self.signal(slot, signal.SIGCONT)
                self.signal(slot, signal.SIGTERM)
            consumer.join(20)
            stream_ended = consumer.ended_at is not None
            consumer.stop_flag = True
            consumer.join(5)
            for slot in self.slots:
                if slot.proc is not None:
                    try:
                        slot.proc.wait(10)
                    except subprocess.TimeoutExpired:
                        slot.proc.kill()
                        slot.proc.wait(5)
        finally:
            hub.close()
        fds_after = open_fds()
        return self._report(locals())

    def _start(self, fault: Fault, consumer: Consumer, actions: list, order: Any, hub: Any) -> None:
        now = time.monotonic()
        if fault.kind == "slow":
            fault.started = now
            consumer.slow_until = now + fault.hold
            fault.resumed = now + fault.hold
            return
        slots = [self.slots[k] for k in fault.slots]
        snap = hub.snapshot()
        not_alive = [s.server_id for s in slots if (snap.server(s.port, s.server_id) or _NONE).state != "alive"]
        if not_alive:
            fault.skipped = f"not alive at its time: {', '.join(not_alive)}"
            return
        fault.started = now
        for slot in slots:
            slot.fault = fault
        if fault.kind == "kill":
            for slot in slots:
                self.signal(slot, signal.SIGKILL)
                assert slot.proc is not None
                slot.proc.wait(10)

            def restart() -> None:
                fault.resumed = time.monotonic()
                for slot in slots:
                    self.spawn(slot, self.netns.hub_ip if self.netns else "127.0.0.1")
            heapq.heappush(actions, (now + fault.hold, next(order), restart))
        elif fault.kind == "freeze":
            for slot in slots:
                self.signal(slot, signal.SIGSTOP)

            def thaw() -> None:
                fault.resumed = time.monotonic()
                for slot in slots:
                    self.signal(slot, signal.SIGCONT)
            heapq.heappush(actions, (now + fault.hold, next(order), thaw))
        elif fault.kind == "partition":
            assert self.netns is not None
            self.netns.cut()

            def heal() -> None:
                fault.resumed = time.monotonic()
                assert self.netns is not None
                self.netns.heal()
            heapq.heappush(actions, (now + fault.hold, next(order), heal))

    # -- the report ------------------------------------------------------------------

    def _report(self, v: Dict[str, Any]) -> Dict[str, Any]:
        a, consumer, schedule = self.args, v["consumer"], v["schedule"]
        snap, n = v["snap"], v["n"]
        failures: List[str] = []
        bound = v["bound"]
        # memory: least-squares slope after the warm-up
        warmup = a.warmup if self.duration > 2 * a.warmup else self.duration / 3
        t, r = v["times"][:n], v["rss"][:n]
        keep = t >= warmup
        fit_s = float(t[keep][-1] - t[keep][0]) if keep.sum() >= 2 else 0.0
        slope = float(np.polyfit(t[keep] / 3600.0, r[keep], 1)[0]) if keep.sum() >= 3 else None
        growth = None if slope is None else slope * fit_s / 3600.0
        if slope is not None and slope > a.max_slope and growth > a.max_growth:
            failures.append(f"hub RSS grows {slope:.1f} MB/hour, {growth:.1f} MB over {fit_s:.0f} s "
                            f"(thresholds --max-slope {a.max_slope:g}, --max-growth {a.max_growth:g})")
        # liveness per fault kind
        per_kind: Dict[str, Dict[str, Any]] = {}
        expected_left = 0
        for kind in ("kill", "freeze", "partition"):
            done = [f for f in schedule if f.kind == kind and f.started is not None]
            cuts = [(f, k, f.cuts[k]) for f in done for k in f.slots]
            lefts = [c.left_after for _, _, c in cuts if c.left_after is not None]
            backs = [c.back_after for _, _, c in cuts if c.back_after is not None]
            expected_left += len(cuts)
            per_kind[kind] = {
                "faults": len(done), "server_cuts": len(cuts), "left": len(lefts), "returned": len(backs),
                "restarted_without_left": sum(1 for _, _, c in cuts if c.restarted),
                "left_after_s": _stats(lefts), "back_after_s": _stats(backs),
                "left_over_bound": sum(1 for x in lefts if x > bound),
                "left_reasons": _count(c.left_reason for _, _, c in cuts if c.left_reason is not None),
            }
            for f, k, c in cuts:
                where = f"{kind} of soak-{k} at {f.at:.1f} s"
                if c.left_after is None:
                    failures.append(f"{where}: no left event" + (" (a 'restarted' event instead)" if c.restarted else ""))
                elif c.back_after is None:
                    failures.append(f"{where}: reported gone but never returned")
        slow = [f for f in schedule if f.kind == "slow" and f.started is not None]
        per_kind["slow"] = {"faults": len(slow), "seconds": round(sum(f.hold for f in slow), 1)}
        skipped = [f for f in schedule if f.skipped]
        kinds = dict(consumer.kinds)
        pre_left = kinds.get("left", 0) - sum(consumer.final_left.values())
        events = {
            "expected": {"joined": a.servers, "left": expected_left, "returned": expected_left},
            "observed": {"joined": kinds.get("joined", 0), "left": pre_left,
                         "returned": kinds.get("returned", 0), "restarted": kinds.get("restarted", 0),
                         "duplicate": kinds.get("duplicate", 0)},
            "unexpected": consumer.unexpected_count, "unexpected_first": consumer.unexpected,
            "left_reasons": consumer.left_reasons, "shutdown_left": consumer.final_left,
        }
        if consumer.unexpected_count:
            failures.append(f"{consumer.unexpected_count} liveness events no fault explains: {consumer.unexpected[:5]}")
        if not v["all_alive_at_end"]:
            failures.append(f"only {len(snap.alive())} of {a.servers} servers alive after {a.settle:g} s of settling")
        # the receive loop
        if consumer.error:
            failures.append(f"the receive loop died: {consumer.error}")
        if consumer.ended_at is not None and consumer.ended_at < v["shutdown_at"]:
            failures.append("the stream ended while servers were still running")
        if not v["stream_ended"]:
            failures.append("the stream did not end after every server said goodbye")
        if consumer.max_gap > LOOP_GAP_LIMIT:
            failures.append(f"the receive loop stalled {consumer.max_gap:.1f} s (limit {LOOP_GAP_LIMIT:g} s)")
        if consumer.final_left.get("closed", 0) != a.servers:
            failures.append(f"shutdown: {consumer.final_left} left events, want {a.servers} 'closed'")
        # frames
        run_s = v["run_end"] - v["t0"]
        per_server = []
        for slot in self.slots:
            st = snap.server(slot.port, slot.server_id) or _NONE
            per_server.append({"server": slot.server_id, "port": slot.port, "in_netns": slot.in_ns,
                               "delivered": slot.frames, "pct_of_nominal": round(100 * slot.frames / (a.fps * run_s), 1),
                               "replaced": st.dropped, "lost": st.lost, "duplicates": st.duplicates,
                               "stale": slot.stale, "out_of_order": slot.out_of_order})
        out_of_order = sum(s.out_of_order for s in self.slots)
        if out_of_order:
            failures.append(f"{out_of_order} frames delivered out of order or twice")
        stale = sum(s.stale for s in self.slots)
        if a.max_stale is not None and stale > a.max_stale:
            failures.append(f"{stale} frames delivered more than {STALE:g} s after they were sent "
                            f"(threshold --max-stale {a.max_stale}): {consumer.stale_after}")
        if any(s.frames == 0 for s in self.slots):
            failures.append("a server delivered no frame")
        rejected: Dict[str, int] = {}
        for port in snap.ports:
            for reason, count in port.rejected.items():
                rejected[reason] = rejected.get(reason, 0) + count
        if rejected:
            failures.append(f"rejected messages from our own servers: {rejected}")
        age, k, i, when = consumer.oldest
        oldest: Dict[str, Any] = {"age_ms": round(age * 1000, 1), "server": f"soak-{k}" if k >= 0 else None, "i": i,
                                  "at_s": round(when - v["t0"], 2), "after_fault": None}
        recent = [f for f in schedule if k in f.slots and f.started is not None and f.started <= when]
        if recent:
            f = recent[-1]
            end = f.resumed if f.resumed is not None else f.started
            oldest["after_fault"] = f"{f.kind} at {f.at:.1f} s, delivered {when - end:+.2f} s after it ended"
        fds = {"before_hub": v["fds_before"], "start": v["fds_start"], "end": v["fds_end"], "after_close": v["fds_after"]}
        if fds["end"] - fds["start"] > a.max_fd_growth:
            failures.append(f"hub fds grew from {fds['start']} to {fds['end']} with every server alive "
                            f"(threshold --max-fd-growth {a.max_fd_growth})")
        if fds["after_close"] > fds["before_hub"]:
            failures.append(f"{fds['after_close'] - fds['before_hub']} fds still open after the hub closed")
        if skipped:
            failures.append(f"{len(skipped)} faults skipped: {[f.skipped for f in skipped][:3]}")
        self.failures = failures
        return {
            "config": {"seed": a.seed, "servers": a.servers, "pattern": a.pattern, "fps": a.fps,
                       "shape": list(SHAPE), "seconds": self.duration, "delivery": "latest",
                       "liveness_timeout_s": 1.5, "detection_bound_s": bound, "slow_sleep_s": a.slow_sleep,
                       "netns": self.netns.name if self.netns else None, "netns_note": self.netns_note,
                       "netns_servers": [f"soak-{k}" for k in v["ns_slots"]],
                       "started": v["started_wall"].isoformat(timespec="seconds"), "commit": _commit(),
                       "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                                   "load_start": [round(x, 2) for x in v["load_start"]],
                                   "load_end": [round(x, 2) for x in os.getloadavg()]}},
            "timing": {"startup_s": round(v["startup_s"], 2), "run_s": round(run_s, 1),
                       "settle_s": round(v["settle_s"], 2), "wall_s": round(time.monotonic() - v["wall0"], 1)},
            "faults": {"scheduled": len(schedule), "skipped": len(skipped), "per_kind": per_kind,
                       "schedule": [f.report() for f in schedule]},
            "events": events,
            "memory": {"rss_start_mb": round(v["rss_start"], 1), "rss_end_mb": round(v["rss_end"], 1),
                       "rss_max_mb": round(float(np.nanmax(r)), 1) if n else None, "samples": int(n),
                       "fit_from_s": round(warmup, 1), "fit_window_s": round(fit_s, 1),
                       "slope_mb_per_hour": None if slope is None else round(slope, 2),
                       "fitted_growth_mb": None if growth is None else round(growth, 2),
                       "max_slope_mb_per_hour": a.max_slope, "max_growth_mb": a.max_growth,
                       "samples_s_mb": [[round(float(x), 1), round(float(y), 2)] for x, y in zip(t, r)]},
            "fds": fds,
            "frames": {"total": sum(s.frames for s in self.slots), "per_server": per_server,
                       "stale_over_1s": sum(s.stale for s in self.slots), "stale_after_fault": consumer.stale_after,
                       "out_of_order": out_of_order},
            "age_ms": {"oldest": oldest, "received_minus_sent": consumer.age_all.summary_ms(),
                       "received_minus_sent_slow": consumer.age_slow.summary_ms(),
                       "at_delivery": consumer.deliv_all.summary_ms(),
                       "at_delivery_slow": consumer.deliv_slow.summary_ms()},
            "rejected": {"total": sum(rejected.values()), "by_reason": rejected},
            "receive_loop": {"error": consumer.error, "max_gap_s": round(consumer.max_gap, 3),
                             "stream_ended_after_goodbyes": v["stream_ended"]},
            "invariants": {"failures": failures, "ok": not failures},
        }


class _NoEntry:
    state = None
    dropped = lost = duplicates = 0


_NONE = _NoEntry()


def _commit() -> Optional[str]:
    """The checkout's commit, with "+dirty" when the library (netgear/) differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT,
                              timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "netgear"], capture_output=True,
                               text=True, cwd=ROOT, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _stats(values: List[float]) -> Dict[str, Optional[float]]:
    if not values:
        return {"p50": None, "max": None}
    return {"p50": round(float(np.median(values)), 3), "max": round(max(values), 3)}


def _count(items: Any) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


# ------------------------------------------------------------------------- output


def table(rep: Dict[str, Any]) -> str:
    c, ev, fk, mem = rep["config"], rep["events"], rep["faults"]["per_kind"], rep["memory"]
    lines = [
        f"netgear soak  {c['started']}  commit {c['commit']}  seed {c['seed']}  {c['servers']} servers, pattern {c['pattern']} "
        f"({'PUB/SUB' if c['pattern'] == 2 else 'REQ/REP'}), {c['shape'][1]}x{c['shape'][0]}x{c['shape'][2]} "
        f"@ {c['fps']:g} fps, delivery latest",
        f"run {rep['timing']['run_s']:.0f} s (+ startup {rep['timing']['startup_s']} s, settle "
        f"{rep['timing']['settle_s']} s); {c['machine']['cores']} cores, load {c['machine']['load_start'][0]} -> "
        f"{c['machine']['load_end'][0]}; partitions: "
        + (f"{', '.join(c['netns_servers'])} in netns {c['netns']}" if c["netns"] else c["netns_note"]),
        "",
        f"{'fault':<10}{'faults':>7}{'cuts':>6}{'left':>6}{'back':>6}  {'left after p50/max s':>22}  "
        f"{'back after p50/max s':>22}  {'> ' + str(c['detection_bound_s']) + ' s':>8}  reasons",
    ]
    for kind in ("kill", "freeze", "partition"):
        k = fk[kind]
        lines.append(f"{kind:<10}{k['faults']:>7}{k['server_cuts']:>6}{k['left']:>6}{k['returned']:>6}  "
                     f"{_pm(k['left_after_s']):>22}  {_pm(k['back_after_s']):>22}  {k['left_over_bound']:>8}  "
                     f"{k['left_reasons']}")
    lines.append(f"{'slow':<10}{fk['slow']['faults']:>7}  ({fk['slow']['seconds']} s of consumer sleeping "
                 f"{c['slow_sleep_s']} s between recv calls)")
    lines += ["", f"{'events':<10}{'expected':>9}{'observed':>9}"]
    for kind in ("joined", "left", "returned"):
        lines.append(f"{kind:<10}{ev['expected'][kind]:>9}{ev['observed'][kind]:>9}")
    lines.append(f"{'other':<10}{'':>9}  restarted {ev['observed']['restarted']}, duplicate "
                 f"{ev['observed']['duplicate']}, unexpected {ev['unexpected']}; at shutdown left {ev['shutdown_left']}")
    lines += ["", f"{'server':<9}{'port':>6} {'netns':>5}{'delivered':>10}{'% nominal':>10}{'replaced':>9}{'lost':>6}{'stale':>6}"]
    for s in rep["frames"]["per_server"]:
        lines.append(f"{s['server']:<9}{s['port']:>6} {'yes' if s['in_netns'] else '':>5}{s['delivered']:>10}"
                     f"{s['pct_of_nominal']:>10}{s['replaced']:>9}{s['lost']:>6}{s['stale']:>6}")
    stale_by = rep["frames"]["stale_after_fault"]
    lines.append(f"{'total':<21}{rep['frames']['total']:>10}   stale (> {STALE:g} s) {rep['frames']['stale_over_1s']}"
                 f"{' after ' + str(stale_by) if stale_by else ''}, "
                 f"out of order {rep['frames']['out_of_order']}, "
                 f"rejected {rep['rejected']['total']} {rep['rejected']['by_reason'] or ''}")
    ages = rep["age_ms"]
    lines += ["", f"{'frame age ms':<34}{'n':>8}{'p50':>9}{'p99':>9}{'max':>10}"]
    for label, key in (("received_at - sent_at, all", "received_minus_sent"),
                       ("received_at - sent_at, slow", "received_minus_sent_slow"),
                       ("at delivery (now - sent_at), all", "at_delivery"),
                       ("at delivery, slow periods", "at_delivery_slow")):
        a = ages[key]
        lines.append(f"{label:<34}{a['n']:>8}{_f(a['p50']):>9}{_f(a['p99']):>9}{_f(a['max']):>10}")
    o = ages["oldest"]
    lines.append(f"oldest delivered frame: {o['age_ms']} ms, {o['server']} frame {o['i']} at {o['at_s']} s"
                 + (f" ({o['after_fault']})" if o["after_fault"] else ""))
    slope = "n/a" if mem["slope_mb_per_hour"] is None else f"{mem['slope_mb_per_hour']:+.2f} MB/hour"
    fds = rep["fds"]
    lines += ["",
              f"hub RSS {mem['rss_start_mb']} -> {mem['rss_end_mb']} MB (max {mem['rss_max_mb']}), slope {slope} "
              f"= {_f(mem['fitted_growth_mb'])} MB over the fit (least squares over {mem['fit_window_s']} s from "
              f"{mem['fit_from_s']} s, {mem['samples']} samples)",
              f"fds: before hub {fds['before_hub']}, start {fds['start']}, end {fds['end']}, after close {fds['after_close']}",
              f"receive loop: longest gap between recv returns {rep['receive_loop']['max_gap_s']} s, error "
              f"{rep['receive_loop']['error']}, stream ended after goodbyes: {rep['receive_loop']['stream_ended_after_goodbyes']}",
              ""]
    fails = rep["invariants"]["failures"]
    lines.append("invariants: OK" if not fails else "invariants FAILED:\n" + "\n".join(f"  - {x}" for x in fails))
    return "\n".join(lines)


def _f(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.1f}"


def _pm(s: Dict[str, Optional[float]]) -> str:
    return "-" if s["p50"] is None else f"{s['p50']:.2f} / {s['max']:.2f}"


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:
        return serve(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, default=None, help="run length in minutes (default 3)")
    length.add_argument("--hours", type=float, default=None, help="run length in hours")
    length.add_argument("--seconds", type=float, default=None, help="run length in seconds (smoke runs)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault schedule (default 0)")
    parser.add_argument("--servers", type=int, default=8, help="server processes (default 8, at least 2)")
    parser.add_argument("--pattern", type=int, choices=(1, 2), default=2, help="1 REQ/REP or 2 PUB/SUB (default 2)")
    parser.add_argument("--fps", type=float, default=15.0, help="frames per second per server (default 15)")
    parser.add_argument("--json", default=None, help="also write the report to this file")
    parser.add_argument("--no-netns", action="store_true", help="no network namespace: skip the partitions")
    parser.add_argument("--slow-sleep", type=float, default=0.2,
                        help="seconds the consumer sleeps between recv calls in slow periods (default 0.2)")
    parser.add_argument("--warmup", type=float, default=30.0,
                        help="seconds of RSS left out of the slope fit (default 30; a third of shorter runs)")
    parser.add_argument("--max-slope", type=float, default=20.0,
                        help="fail if the hub's RSS grows faster than this many MB/hour (default 20)...")
    parser.add_argument("--max-growth", type=float, default=5.0,
                        help="...and the fitted growth over the run exceeds this many MB (default 5: allocator "
                             "steps of a few MB are not leaks; a short run cannot tell a small leak)")
    parser.add_argument("--max-fd-growth", type=int, default=4,
                        help="fail if the hub holds more than this many extra fds at the end (default 4)")
    parser.add_argument("--max-stale", type=int, default=0,
                        help=f"fail if more frames than this arrive over {STALE:g} s after they were sent "
                             "(default 0: after a fault the hub gets fresh frames, not a backlog)")
    parser.add_argument("--settle", type=float, default=30.0,
                        help="seconds allowed after the run for every server to be back (default 30)")
    args = parser.parse_args(argv)
    if args.servers < 2:
        parser.error("--servers must be at least 2 (one server always stays up, else the stream ends)")
    duration = (args.hours * 3600 if args.hours is not None else args.seconds if args.seconds is not None
                else (args.minutes if args.minutes is not None else 3.0) * 60)
    if duration < 10:
        parser.error("the run must last at least 10 seconds")
    soak = Soak(args, duration)

    def terminate(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        report = soak.run()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        _rmtree(soak.logdir)
        return 130
    print(table(report), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)
    if soak.failures:
        print(f"server logs: {soak.logdir}", flush=True)
        return 1
    _rmtree(soak.logdir)
    return 0


def _rmtree(path: Path) -> None:
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


if __name__ == "__main__":
    sys.exit(main())
