"""Calibrated streaming detectors: in-control ARL0, detection delay and update cost.

Run: nice -n 10 python benchmarks/streaming.py [--runs 200] [--reference 50000]
(with River's defaults too: the same command with a Python that has ``river``).
Parts: ``--only ADWIN,KSWIN`` (detectors whose names start so), ``--tables arl0,delay``
(of arl0, length, delay, river, cost), ``--processes iid`` (of iid, ar1), ``--kswin-ar1``.

1. ARL0. For each process (i.i.d. N(0, 1); AR(1) with φ = 0.5 and unit variance),
   a reference of ``--reference`` values is drawn; each detector is calibrated on it
   (``keel.online.calibrate``, block estimated from the reference) to targets of
   1,000 and 10,000; then ``--runs`` fresh seeded streams of the true process are
   read until the first alarm. Prints the mean run length against the target.
   Then the same for AR(1) references of 2,000, 10,000 and 50,000 values (five each):
   how far the reference's own sampling error moves the achieved ARL0.
2. Detection delay. Every detector calibrated to the same ARL0 (10,000) on an
   i.i.d. reference; streams shift by 0.25, 0.5 and 1σ after 1,000 in-control
   values; delay = values read from the shift to the alarm, over runs with no
   alarm before the shift (their share is printed too). A detector that always
   fires is listed as the floor (river#1963).
3. River's defaults (``drift.PageHinkley()``, ``ADWIN()``, ``KSWIN()``), uncalibrated,
   with their own measured ARL0 and delays, when ``river`` imports. keel's ADWIN and
   KSWIN raise River's alarms index for index (``tests/test_online_detectors.py``), so
   at River's defaults they are these rows; calibrated, they are in tables 1 and 2.

ADWIN is calibrated like the others. KSWIN's simulation sorts 60 values per stream and
step, about 100× the others' cost: it is calibrated on ``--kswin-streams`` pseudo-streams
(500) instead of 2,000, and on the i.i.d. process only.
4. Update cost per record: ``update`` one value at a time, ``update_many`` on a
   batch of 100,000, and the simulation across 2,000 streams.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.signal import lfilter

from keel.online import ADWIN, CUSUM, EWMA, KSWIN, PageHinkley, StreamDetector
from keel.online.calibrate import calibrate, run_lengths
from keel.seeds import derive_seed

PHI = 0.5
CHANGE = 1_000
SHIFTS = (0.25, 0.5, 1.0)


class Process:
    """Seeded streams of i.i.d. N(0, 1) (φ = 0) or unit-variance AR(1), each shifted by
    ``shift`` from its ``change``-th value on; every stream continues where it stopped."""

    def __init__(self, phi: float, runs: int, seed: int, shift: float = 0.0, change: int = 0):
        self.phi, self.shift, self.change = phi, shift, change
        self.rng = np.random.default_rng(seed)
        self.last = self.rng.normal(size=runs)
        self.position = np.zeros(runs, dtype=np.int64)

    def __call__(self, rows: np.ndarray, length: int) -> np.ndarray:
        noise = self.rng.normal(size=(rows.size, length))
        if self.phi == 0.0:
            values = noise
        else:
            noise *= np.sqrt(1 - self.phi**2)
            zi = (self.phi * self.last[rows])[:, None]
            values, _ = lfilter([1.0], [1.0, -self.phi], noise, axis=1, zi=zi)
            self.last[rows] = values[:, -1]
        if self.shift:
            time_index = self.position[rows][:, None] + np.arange(length)
            values = values + self.shift * (time_index >= self.change)
        self.position[rows] += length
        return values

    def sample(self, size: int) -> np.ndarray:
        return self(np.array([0]), size)[0]


def factories(reference: np.ndarray) -> dict[str, Callable[[float], StreamDetector]]:
    every = all_factories(reference)
    only = SETTINGS["only"]
    return {name: make for name, make in every.items() if not only or name.startswith(only)}


def all_factories(reference: np.ndarray) -> dict[str, Callable[[float], StreamDetector]]:
    return {
        "CUSUM (k = 0.25)": lambda h: CUSUM.from_reference(reference, k=0.25, h=h),
        "Page-Hinkley (δ = 0.25)": lambda t: PageHinkley(delta=0.25, threshold=t),
        "EWMA (λ = 0.1)": lambda width: EWMA.from_reference(reference, smoothing=0.1, width=width),
        "ADWIN (clock = 32)": lambda t: ADWIN(threshold=t),
        "KSWIN (100 / 30)": lambda t: KSWIN(threshold=t),
    }


# --kswin-streams, --only, --kswin-ar1, --processes
SETTINGS: dict[str, Any] = {
    "kswin_streams": 500,
    "only": (),
    "kswin_ar1": False,
    "processes": ("iid", "ar1"),
}


def streams_for(name: str) -> int:
    return int(SETTINGS["kswin_streams"]) if name.startswith("KSWIN") else 2_000


def threshold_text(name: str, threshold: float) -> str:
    """The threshold, and for ADWIN and KSWIN the δ or α it stands for (t = −ln δ)."""
    if name.startswith("ADWIN"):
        return f"{threshold:.3f} (δ = {np.exp(-threshold):.3g})"
    if name.startswith("KSWIN"):
        return f"{threshold:.3f} (α = {np.exp(-threshold):.3g})"
    return f"{threshold:.3f}"


def arl0_table(runs: int, reference_size: int) -> None:
    print("\n## ARL0 of calibrated detectors\n")
    print(
        "| process | target | detector | block | threshold | calibration s "
        "| measured ARL0 | ± s.e. | measured / target |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for label, phi in (("i.i.d. N(0,1)", 0.0), ("AR(1) φ=0.5", PHI)):
        if ("ar1" if phi else "iid") not in SETTINGS["processes"]:
            continue
        reference = Process(phi, 1, derive_seed("reference", label)).sample(reference_size)
        for target in (1_000, 10_000):
            for name, factory in factories(reference).items():
                if name.startswith("KSWIN") and phi and not SETTINGS["kswin_ar1"]:
                    continue
                started = time.perf_counter()
                result = calibrate(factory, target, reference, streams=streams_for(name))
                took = time.perf_counter() - started
                stream = Process(phi, runs, derive_seed("streams", label, target, name))
                lengths, censored = run_lengths(
                    result.detector, stream, runs, max_length=100 * target
                )
                mean, error = lengths.mean(), lengths.std(ddof=1) / np.sqrt(runs)
                note = f" ({censored.sum()} censored)" if censored.any() else ""
                print(
                    f"| {label} | {target:,} | {name} | {result.block} "
                    f"| {threshold_text(name, result.threshold)} "
                    f"| {took:.1f} | {mean:,.0f}{note} | {error:,.0f} | {mean / target:.2f} |"
                )


def reference_length_table(runs: int, references: int = 5, target: int = 1_000) -> None:
    print(f"\n## How long an AR(1) reference must be (target ARL0 = {target:,})\n")
    print(f"Measured / target ARL0 over {runs} runs, for {references} references of each length.\n")
    print("| reference values | detector | block (range) | measured / target (range) |")
    print("|---|---|---|---|")
    for size in (2_000, 10_000, 50_000):
        for name in ("CUSUM (k = 0.25)", "EWMA (λ = 0.1)"):
            ratios, blocks = [], []
            for copy in range(references):
                reference = Process(PHI, 1, derive_seed("length", size, copy)).sample(size)
                result = calibrate(all_factories(reference)[name], target, reference)
                stream = Process(PHI, runs, derive_seed("length-streams", size, copy, name))
                lengths, _ = run_lengths(result.detector, stream, runs, max_length=100 * target)
                ratios.append(lengths.mean() / target)
                blocks.append(result.block)
            print(
                f"| {size:,} | {name} | {min(blocks)}–{max(blocks)} "
                f"| {min(ratios):.2f}–{max(ratios):.2f} |"
            )


def delay_table(runs: int, reference_size: int, target: int) -> None:
    print(f"\n## Detection delay, every detector calibrated to ARL0 = {target:,}\n")
    print(f"Shift after {CHANGE:,} in-control values; delay in values (mean ± s.e.).\n")
    header = " | ".join(f"{shift}σ" for shift in SHIFTS)
    print(f"| detector | {header} | false alarm before the shift |")
    print("|---|" + "---|" * len(SHIFTS) + "---|")
    reference = Process(0.0, 1, derive_seed("reference", "delay")).sample(reference_size)
    for name, factory in factories(reference).items():
        detector = calibrate(factory, target, reference, streams=streams_for(name)).detector
        cells, early = [], []
        for shift in SHIFTS:
            stream = Process(0.0, runs, derive_seed("delay", name, shift), shift, CHANGE)
            lengths, _ = run_lengths(detector, stream, runs, max_length=CHANGE + 50 * target)
            after = lengths[lengths > CHANGE] - CHANGE
            cells.append(f"{after.mean():.1f} ± {after.std(ddof=1) / np.sqrt(after.size):.1f}")
            early.append(np.mean(lengths <= CHANGE))
        print(f"| {name} | " + " | ".join(cells) + f" | {np.mean(early):.0%} |")
    print("| always fires (ARL0 = 1) | " + " | ".join("1" for _ in SHIFTS) + " | 100% |")


def river_tables(runs: int, cap: int) -> None:
    try:
        from river import drift
    except ImportError:
        print("\n(River is not installed here: its defaults are not measured.)")
        return
    import river

    print(f"\n## River {river.__version__}'s defaults, uncalibrated (on i.i.d. N(0,1))\n")
    print(f"{runs} runs each, at most {cap:,} values per run.\n")
    header = " | ".join(f"delay {shift}σ" for shift in SHIFTS)
    print(f"| detector | ARL0 | ± s.e. | censored | {header} | µs per update |")
    print("|---|---|---|---|" + "---|" * len(SHIFTS) + "---|")
    for name in ("PageHinkley", "ADWIN", "KSWIN"):
        make = getattr(drift, name)
        lengths, seconds, values = [], 0.0, 0
        for run in range(runs):
            stream = np.random.default_rng(derive_seed("river", name, run)).normal(size=cap)
            detector = make()
            started = time.perf_counter()
            length = cap
            for i, x in enumerate(stream.tolist()):
                detector.update(x)
                if detector.drift_detected:
                    length = i + 1
                    break
            seconds += time.perf_counter() - started
            values += length
            lengths.append(length)
        lengths_array = np.array(lengths, dtype=float)
        cells = []
        for shift in SHIFTS:
            delays = []
            for run in range(runs):
                rng = np.random.default_rng(derive_seed("river-delay", name, shift, run))
                stream = rng.normal(size=CHANGE + cap) + shift * (np.arange(CHANGE + cap) >= CHANGE)
                detector = make()
                for i, x in enumerate(stream.tolist()):
                    detector.update(x)
                    if detector.drift_detected:
                        if i >= CHANGE:
                            delays.append(i + 1 - CHANGE)
                        break
            cells.append(f"{np.mean(delays):.0f} ({len(delays)}/{runs})" if delays else "—")
        censored = int(np.sum(lengths_array >= cap))
        print(
            f"| {name}() | {lengths_array.mean():,.0f} "
            f"| {lengths_array.std(ddof=1) / np.sqrt(runs):,.0f} | {censored} | "
            + " | ".join(cells)
            + f" | {1e6 * seconds / values:.2f} |"
        )
    print(
        "\nA delay cell is the mean over the runs (shown) that alarmed after the shift, not before."
    )


def cost_table() -> None:
    print("\n## Update cost per record\n")
    print("| detector | update() ns | update_many(100,000) ns | simulate 2,000 streams ns |")
    print("|---|---|---|---|")
    rng = np.random.default_rng(0)
    values = rng.normal(size=100_000)
    block = rng.normal(size=(2_000, 2_000))
    for name, factory in factories(rng.normal(size=10_000)).items():
        rows = block[: streams_for(name) // 10] if name.startswith("KSWIN") else block
        detector = factory(50.0 if name[:5] in ("ADWIN", "KSWIN") else 1e9)  # never alarms
        started = time.perf_counter()
        for x in values[:50_000].tolist():
            detector.update(x)
        single = (time.perf_counter() - started) / 50_000
        detector.reset()
        started = time.perf_counter()
        detector.update_many(values)
        batch = (time.perf_counter() - started) / values.size
        started = time.perf_counter()
        detector.simulate(rows, detector.fresh_carry(rows.shape[0]))
        simulated = (time.perf_counter() - started) / rows.size
        print(f"| {name} | {single * 1e9:,.0f} | {batch * 1e9:,.0f} | {simulated * 1e9:,.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--reference", type=int, default=50_000)
    parser.add_argument("--delay-target", type=int, default=10_000)
    parser.add_argument("--river-runs", type=int, default=30)
    parser.add_argument("--river-cap", type=int, default=100_000)
    parser.add_argument("--kswin-streams", type=int, default=SETTINGS["kswin_streams"])
    parser.add_argument("--skip-river", action="store_true")
    parser.add_argument("--kswin-ar1", action="store_true", help="calibrate KSWIN on AR(1) too")
    parser.add_argument("--processes", default="iid,ar1", help="the ARL0 table's processes")
    parser.add_argument(
        "--tables", default="arl0,length,delay,river,cost", help="which tables (comma list)"
    )
    parser.add_argument("--only", default="", help="detectors whose names start so (comma list)")
    args = parser.parse_args()
    SETTINGS["kswin_streams"] = args.kswin_streams
    SETTINGS["only"] = tuple(part.strip() for part in args.only.split(",") if part.strip())
    SETTINGS["kswin_ar1"] = args.kswin_ar1
    SETTINGS["processes"] = tuple(args.processes.split(","))
    tables = set(args.tables.split(","))
    started = time.perf_counter()
    if "arl0" in tables:
        arl0_table(args.runs, args.reference)
    if "length" in tables and not args.only:
        reference_length_table(args.runs)
    if "delay" in tables:
        delay_table(args.runs, args.reference, args.delay_target)
    if "river" in tables and not args.skip_river:
        river_tables(args.river_runs, args.river_cap)
    if "cost" in tables:
        cost_table()
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
