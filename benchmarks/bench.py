"""netgear benchmarks: K servers in separate processes, one hub, loopback TCP.

Every scenario is measured next to a bare-pyzmq baseline in the same run (the machines are
shared and noisy, so only ratios measured side by side mean anything).

    python -m benchmarks.bench                 # the quick suite (a few minutes)
    python -m benchmarks.bench --full          # every scenario of docs/performance.md
    python -m benchmarks.bench --only paced    # scenarios whose name contains "paced"
    python -m benchmarks.bench --only raw-sat --repeat 3   # each 3 times, with medians
    netgear bench ...                          # the same, from the command line
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from benchmarks.baseline import JpegDecoders, ZmqReceiver, camera_frame, zmq_sender
from benchmarks.delay_proxy import DelayProxy
from benchmarks.procstat import rss_mb

CTX = mp.get_context("spawn")


@dataclass(frozen=True)
class Scenario:
    name: str
    servers: int
    shape: tuple
    pattern: int  # 1 reqrep, 2 pubsub
    fps: Optional[float] = None  # None: saturating
    jpeg: bool = False
    preencoded: bool = False
    consumer_fps: Optional[float] = None  # slow consumer
    delivery: Optional[str] = None
    seconds: float = 3.0
    baseline: bool = True
    delay: float = 0.0  # seconds added each way by a delaying proxy
    inflight: Optional[int] = None  # server max_inflight (None: default)
    idle: bool = False  # servers connect and stay silent
    #: paced servers start a fraction of a frame interval apart (server i of K at i/K), as
    #: independent cameras do, instead of all at once (their frames arriving together)
    stagger: bool = False


@dataclass
class Result:
    name: str
    system: str
    frames: int = 0
    fps: float = 0.0
    mbps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    drops: int = 0
    hub_cpu: float = 0.0  # fraction of one core
    server_cpu: float = 0.0  # fraction of one core, all servers together
    extra: Dict[str, Any] = field(default_factory=dict)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pct(values: List[float], q: float) -> float:
    if not values:
        return float("nan")
    return float(np.percentile(np.asarray(values), q))


# ------------------------------------------------------------------------- netgear side


def netgear_sender(sc: Scenario, port: int, seed: int, go: Any, stop: Any, out: Any) -> None:
    """One netgear server process: send until ``stop``; report frames and CPU."""
    from netgear import NetGear, codecs

    options: Dict[str, Any] = {"multiserver_mode": True}
    if sc.jpeg and not sc.preencoded:
        options["jpeg_compression"] = True
    if sc.inflight:
        options["max_inflight"] = sc.inflight
    frame = camera_frame(sc.shape, seed)
    jpeg = codecs.encode_jpeg(frame, codecs.JpegSettings()) if sc.preencoded else None
    sent = 0
    with NetGear(address="127.0.0.1", port=port, pattern=sc.pattern, **options) as server:
        go.wait(60)
        cpu0 = _cpu()
        start = time.monotonic() + _phase(sc, seed)
        while not stop.is_set() and not sc.idle:
            if sc.fps:
                delay = start + sent / sc.fps - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    break
            try:
                if jpeg is not None:
                    server.send_jpeg(jpeg, shape=sc.shape)
                else:
                    server.send(frame)
            except Exception:
                break
            sent += 1
        if sc.idle:
            stop.wait(120)
        cpu = _cpu() - cpu0
    out.put(("sender", sent, cpu))


def _phase(sc: Scenario, index: int) -> float:
    """When paced server ``index`` sends its first frame, after the common start."""
    return index / (sc.servers * sc.fps) if sc.stagger and sc.fps else 0.0


def run_netgear(sc: Scenario) -> Result:
    from netgear import NetGear

    opts: Dict[str, Any] = {"multiserver_mode": True}
    if sc.delivery:
        opts["delivery"] = sc.delivery
    with NetGear(address="127.0.0.1", port=[0] * sc.servers, pattern=sc.pattern, receive_mode=True, **opts) as hub:
        go, stop, out = CTX.Event(), CTX.Event(), CTX.Queue()
        proxies = [DelayProxy(p, sc.delay) for p in hub.ports] if sc.delay else []
        ports = [x.port for x in proxies] if proxies else hub.ports
        procs = [CTX.Process(target=netgear_sender, args=(sc, p, i, go, stop, out), daemon=True) for i, p in enumerate(ports)]
        for proc in procs:
            proc.start()
        deadline = time.monotonic() + 60
        while len(hub.snapshot().alive()) < sc.servers and time.monotonic() < deadline:
            time.sleep(0.02)
        go.set()
        result = _measure_netgear(sc, hub)
        stop.set()
        result.server_cpu = _collect(out, procs) / sc.seconds
        servers = hub.snapshot().servers
        result.drops = sum(s.dropped + s.lost for s in servers)
        if result.drops:  # which side: dropped by the hub (its queues), lost by the servers
            result.extra["lost"] = sum(s.lost for s in servers)
        for proxy in proxies:
            proxy.close()
        return result


def _measure_netgear(sc: Scenario, hub: Any) -> Result:
    if sc.idle:  # the hub waits; this thread only sleeps, so CPU used is the hub's
        cpu0 = _cpu()
        time.sleep(sc.seconds)
        return Result(sc.name, "netgear", hub_cpu=(_cpu() - cpu0) / sc.seconds)
    warmup = 0.5
    t_start = time.monotonic() + warmup
    t_end = t_start + sc.seconds
    latencies: List[float] = []
    ages: List[float] = []
    frames = nbytes = 0
    cpu0 = None
    rss0 = rss_mb()  # servers connected, before the first frame
    rss_max = rss0
    while True:
        now = time.monotonic()
        if now >= t_end:
            break
        if cpu0 is None and now >= t_start:
            cpu0 = _cpu()
        try:
            packet = hub.recv_packet(timeout=max(0.01, t_end - now))
        except TimeoutError:
            break
        if packet is None:
            break
        if now < t_start:
            continue
        frames += 1
        nbytes += packet.frame.nbytes if packet.frame is not None else 0
        latency = time.time() - packet.sent_at
        latencies.append(latency * 1000)
        if sc.consumer_fps:
            ages.append(latency * 1000)
            time.sleep(1.0 / sc.consumer_fps)
            rss_max = max(rss_max, rss_mb())
    cpu = (_cpu() - (cpu0 if cpu0 is not None else _cpu())) / sc.seconds
    res = Result(sc.name, "netgear", frames, frames / sc.seconds, nbytes / sc.seconds / 1e6,
                 _pct(latencies, 50), _pct(latencies, 99), hub_cpu=cpu)
    if ages:
        res.extra["age_p50_ms"] = _pct(ages, 50)
        res.extra["age_p99_ms"] = _pct(ages, 99)
        res.extra["hub_rss_growth_mb"] = rss_max - rss0
    return res


def _collect(out: Any, procs: List[Any]) -> float:
    cpu = 0.0
    for _ in procs:
        try:
            _, _, c = out.get(timeout=15)
            cpu += c
        except Exception:
            pass
    for proc in procs:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
    return cpu


# ------------------------------------------------------------------------- baseline side


def run_baseline(sc: Scenario, kind: str) -> Result:
    """Bare pyzmq on the scenario: raw frames, or for the JPEG scenarios JPEG decoded by a
    pool of threads (see :mod:`benchmarks.baseline`)."""
    recv = ZmqReceiver(kind, sc.servers)
    proxies = [DelayProxy(port, sc.delay) for _, port in recv.sockets] if sc.delay else []
    urls = [f"tcp://127.0.0.1:{x.port}" for x in proxies] if proxies else recv.urls
    jpeg = ("pre" if sc.preencoded else "live") if sc.jpeg else None
    decoders = JpegDecoders(sc.shape) if jpeg else None
    try:
        go, stop, out, ready = CTX.Event(), CTX.Event(), CTX.Queue(), CTX.Queue()
        procs = [CTX.Process(target=zmq_sender, args=(kind, url, sc.shape, sc.fps, go, stop, out, ready, jpeg, i, _phase(sc, i)),
                             daemon=True) for i, url in enumerate(urls)]
        for proc in procs:
            proc.start()
        for _ in procs:  # every sender has started and connected (32 take a few seconds)
            ready.get(timeout=120)
        time.sleep(1.0)  # the connections are made; the baseline has no liveness to wait on
        go.set()
        warmup = 0.5
        t_start = time.monotonic() + warmup
        t_end = t_start + sc.seconds
        frames = nbytes = 0
        latencies: List[float] = []
        cpu0 = None
        for _, frame, sent_ns in recv.receive(timeout=2.0, raw=decoders is None):
            now = time.monotonic()
            if now >= t_end:
                break
            if cpu0 is None and now >= t_start:
                cpu0 = _cpu()
            if decoders is not None:  # counted once decoded, below
                decoders.submit(frame, sent_ns)
                continue
            if now < t_start:
                continue
            frames += 1
            nbytes += frame.nbytes
            latencies.append((time.time_ns() - sent_ns) / 1e6)
        cpu = (_cpu() - (cpu0 or _cpu())) / sc.seconds
        stop.set()
        if decoders is not None:
            counted = [d for d in list(decoders.done) if t_start <= d[0] < t_end]
            frames, nbytes = len(counted), sum(d[2] for d in counted)
            latencies = [d[1] for d in counted]
        res = Result(sc.name, f"zmq-{kind}", frames, frames / sc.seconds, nbytes / sc.seconds / 1e6,
                     _pct(latencies, 50), _pct(latencies, 99), hub_cpu=cpu)
        res.server_cpu = _collect(out, procs) / sc.seconds
        return res
    finally:
        for proxy in proxies:
            proxy.close()
        if decoders is not None:
            decoders.close()
        recv.close()


# ------------------------------------------------------------------------- suite

VGA, HD, QVGA = (480, 640, 3), (1080, 1920, 3), (240, 320, 3)


def scenarios(full: bool) -> List[Scenario]:
    out: List[Scenario] = []
    counts = (1, 2, 4, 8) if full else (1, 4)
    for pattern, pname in ((1, "reqrep"), (2, "pubsub")):
        for k in counts:
            out.append(Scenario(f"raw-sat-{pname}-k{k}-vga", k, VGA, pattern, delivery="fifo"))
        out.append(Scenario(f"raw-sat-{pname}-k32-qvga", 32, QVGA, pattern, delivery="fifo"))
        if full:
            out.append(Scenario(f"raw-sat-{pname}-k1-hd", 1, HD, pattern, delivery="fifo"))
    out.append(Scenario("paced-raw-k8-vga-30fps", 8, VGA, 1, fps=30, delivery="fifo"))
    if full:
        out.append(Scenario("paced-raw-k8-vga-30fps-pubsub", 8, VGA, 2, fps=30, delivery="fifo"))
        out.append(Scenario("paced-raw-k8-vga-30fps-staggered", 8, VGA, 1, fps=30, delivery="fifo", stagger=True))
    out.append(Scenario("paced-jpeg-k4-hd-30fps", 4, HD, 1, fps=30, jpeg=True))
    if full:
        out.append(Scenario("paced-jpeg-k4-hd-30fps-pubsub", 4, HD, 2, fps=30, jpeg=True))
    # The same cameras with their encoding done before the run: on real camera hosts it
    # happens on their own CPUs, here it would share the hub's two cores (encoding and
    # decoding 120 frames of 1920x1080 a second takes more than two cores of this machine:
    # docs/performance.md). What is left is the hub's work.
    out.append(Scenario("paced-jpeg-k4-hd-30fps-preencoded", 4, HD, 1, fps=30, jpeg=True, preencoded=True))
    if full:
        out.append(Scenario("paced-jpeg-k4-hd-30fps-preencoded-pubsub", 4, HD, 2, fps=30, jpeg=True,
                            preencoded=True))
    out.append(Scenario("jpeg-sat-k4-vga-preencoded", 4, VGA, 1, jpeg=True, preencoded=True))
    if full:  # one camera: its frames decode on every thread (fifo), filed back in order
        out.append(Scenario("jpeg-sat-k1-hd-preencoded", 1, HD, 1, jpeg=True, preencoded=True))
    if full:  # senders flat out with no acknowledgement to pace them: see docs/performance.md
        out.append(Scenario("jpeg-sat-k4-vga-preencoded-pubsub", 4, VGA, 2, jpeg=True, preencoded=True))
    out.append(Scenario("jpeg-sat-k4-vga-live", 4, VGA, 1, jpeg=True))
    out.append(Scenario("slow-consumer-k4-vga-latest", 4, VGA, 2, fps=30, consumer_fps=2, delivery="latest",
                        baseline=False, seconds=5))
    out.append(Scenario("idle-k4", 4, VGA, 1, idle=True, baseline=False, seconds=5))
    for inflight in (1, 4, 8, 16):
        out.append(Scenario(f"rtt20ms-reqrep-k1-vga-inflight{inflight}", 1, VGA, 1, delay=0.010, inflight=inflight,
                            baseline=inflight == 1, delivery="fifo"))
    return out


def codec_limits(shape: tuple, seconds: float = 0.5) -> Dict[str, float]:
    """Seconds per frame to encode and to decode one camera-like frame, in this process,
    each timed over at least ``seconds`` (60 frames, as before, took a tenth of a second:
    short enough for one preemption on a shared host to show in the yardstick)."""
    from netgear import codecs

    frame = camera_frame(shape, 0)
    settings = codecs.JpegSettings()
    data = codecs.encode_jpeg(frame, settings)

    def per_frame(work: Any) -> float:
        count, start = 0, time.perf_counter()
        while count < 20 or time.perf_counter() - start < seconds:
            work()
            count += 1
        return (time.perf_counter() - start) / count

    encode_s = per_frame(lambda: codecs.encode_jpeg(frame, settings))
    # decoded as the hub decodes the scenario's frames (the senders' default options)
    decode_s = per_frame(lambda: codecs.decode_jpeg(data, "BGR", shape, fastdct=settings.fastdct,
                                                    fastupsample=settings.fastupsample))
    return {"encode_s": encode_s, "decode_s": decode_s}


def _annotate(sc: Scenario, result: Result, before: Optional[Dict[str, float]] = None) -> Optional[Dict[str, float]]:
    """Ratios against the codec measured in this run, for the JPEG scenarios: right after
    the run and, when given, right before it (the mean of both, so a machine that got
    busier or quieter during the run biases the ratio less). Returns the measurement taken
    after the run."""
    if not sc.jpeg or sc.fps:
        return None
    after = limits = codec_limits(sc.shape)
    if before is not None:
        limits = {k: (limits[k] + before[k]) / 2 for k in limits}
    if sc.preencoded:
        one_thread = 1.0 / limits["decode_s"]
        result.extra["one_thread_decode_fps"] = one_thread
        result.extra["ratio_vs_one_thread_decode"] = result.fps / one_thread
    else:
        two_core_limit = 2.0 / (limits["encode_s"] + limits["decode_s"])
        result.extra["two_core_codec_limit_fps"] = two_core_limit
        result.extra["ratio_vs_codec_limit"] = result.fps / two_core_limit
    return after


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="netgear bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="every scenario (slower)")
    parser.add_argument("--only", default=None, help="run scenarios whose name contains this")
    parser.add_argument("--seconds", type=float, default=None, help="measurement window per run")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="run each scenario N times, netgear and baselines in turn, and add a line "
                             "with the medians (a noisy host moves single runs by tens of percent)")
    parser.add_argument("--json", default=None, help="also write results to this file")
    parser.add_argument("--codec", action="store_true",
                        help="only time the JPEG codec in one and in two threads (does it release the GIL?)")
    parser.add_argument("--peers", action="store_true",
                        help="run the comparison with vidgear's NetGear and imagezmq instead (benchmarks/peers.py)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    if args.codec:
        if args.peers or args.full or args.only or args.repeat > 1:
            parser.error("--codec takes only --seconds and --json")
        from benchmarks import codec

        return codec.main(args.seconds or 1.0, args.json)
    if args.peers:
        if args.full:
            parser.error("--full does not apply to --peers (it always runs every peer scenario)")
        from benchmarks import peers

        return peers.main(args.only, args.seconds, args.repeat, args.json)
    results: List[Dict[str, Any]] = []
    for sc in scenarios(args.full):
        if args.only and args.only not in sc.name:
            continue
        if args.seconds:
            sc = Scenario(**{**asdict(sc), "seconds": args.seconds})
        runs = []
        for i in range(args.repeat):
            rows = _run_once(sc)
            if args.repeat > 1:
                for r in rows:
                    r.extra["repeat"] = i + 1
            for r in rows:
                print(_line(r), flush=True)
                results.append(asdict(r))
            runs.append(rows[0])
        if args.repeat > 1:
            summary = _median_of(runs)
            print(_line(summary), flush=True)
            results.append(asdict(summary))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


def _run_once(sc: Scenario) -> List[Result]:
    """netgear, then its baselines, for one scenario: netgear's row carries the ratios."""
    before = codec_limits(sc.shape) if sc.jpeg and not sc.fps else None
    rows = [run_netgear(sc)]
    between = _annotate(sc, rows[0], before)
    if sc.baseline and sc.jpeg:
        # JPEG: PUSH->PULL into a pool of decoding threads (REQ->REP, one frame in flight,
        # would be no yardstick); both rows carry their ratios to the codec
        rows.append(run_baseline(sc, "pushpull"))
        _annotate(sc, rows[1], between)
        rows[0].extra["ratio_vs_zmq"] = rows[0].fps / (rows[1].fps or float("nan"))
    elif sc.baseline:
        kinds = ("reqrep",) if sc.delay else ("pushpull", "reqrep")
        yardsticks = [run_baseline(sc, kind) for kind in kinds]
        rows += yardsticks
        best = max(r.mbps for r in yardsticks) or float("nan")
        rows[0].extra["ratio_vs_best_zmq"] = rows[0].mbps / best
        rows[0].extra["cpu_ratio_vs_zmq"] = rows[0].hub_cpu / max(1e-9, min(r.hub_cpu for r in yardsticks))
        if sc.pattern == 2 and not sc.fps and not sc.delay:
            # not a yardstick of the targets (those are PUSH->PULL and REQ->REP): what
            # ZeroMQ's PUB/SUB itself makes of the same senders, next to netgear's
            rows.append(run_baseline(sc, "pubsub"))
            rows[0].extra["ratio_vs_zmq_pubsub"] = rows[0].mbps / (rows[-1].mbps or float("nan"))
    return rows


def _median_of(runs: List[Result]) -> Result:
    """One system's medians over repeated runs; each ratio's median, min and max (each
    ratio was taken against the baseline measured right after that run)."""
    def med(values: List[float]) -> float:
        return float(np.median(values))

    out = Result(runs[0].name, f"median of {len(runs)}", int(med([r.frames for r in runs])),
                 med([r.fps for r in runs]), med([r.mbps for r in runs]), med([r.p50_ms for r in runs]),
                 med([r.p99_ms for r in runs]), int(med([r.drops for r in runs])), med([r.hub_cpu for r in runs]),
                 med([r.server_cpu for r in runs]))
    for key in runs[0].extra:
        if key == "repeat":
            continue
        values = [r.extra[key] for r in runs if key in r.extra]
        out.extra[key] = med(values)
        if key.startswith(("ratio", "cpu_ratio")):
            out.extra[f"{key}_min"], out.extra[f"{key}_max"] = min(values), max(values)
    return out


def _line(r: Result) -> str:
    extra = " ".join(f"{k}={v:.3g}" for k, v in r.extra.items())
    return (f"{r.name:<32} {r.system:<13} fps={r.fps:8.1f} MB/s={r.mbps:8.1f} p50={r.p50_ms:7.2f}ms "
            f"p99={r.p99_ms:7.2f}ms drops={r.drops:5d} hubcpu={r.hub_cpu:6.3f} srvcpu={r.server_cpu:6.3f} {extra}")


if __name__ == "__main__":
    sys.exit(main())
