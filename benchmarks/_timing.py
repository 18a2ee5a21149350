"""Side-by-side timing for noisy machines: interleaved rounds, best round per candidate.

Rates are counted against this process's CPU time (``time.process_time``), not wall time, so
time the scheduler gives to other processes on a busy machine is not charged to whichever
candidate happened to be running. The code under test is single-threaded and does no I/O.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Result:
    name: str
    ops_per_sec: float

    @property
    def usec(self) -> float:
        return 1e6 / self.ops_per_sec


def _rate(fn: Callable[[], object], seconds: float) -> float:
    # Calibrate a batch that takes ~10 ms, then run batches until `seconds` pass.
    batch = 1
    while True:
        start = time.process_time()
        for _ in range(batch):
            fn()
        if time.process_time() - start > 0.01:
            break
        batch *= 2
    done = 0
    start = time.process_time()
    while (elapsed := time.process_time() - start) < seconds:
        for _ in range(batch):
            fn()
        done += batch
    return done / elapsed


def compare(
    candidates: dict[str, Callable[[], object]], *, rounds: int = 5, seconds: float = 0.3
) -> dict[str, Result]:
    """Run every candidate once per round, in turn; keep each one's best round.

    Interleaving spreads background noise over all candidates, and the best round is the
    least disturbed one, so the ratios between candidates are what one run can trust.
    """
    best = dict.fromkeys(candidates, 0.0)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            for name, fn in candidates.items():
                best[name] = max(best[name], _rate(fn, seconds))
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: Result(name, rate) for name, rate in best.items()}


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
