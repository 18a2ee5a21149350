"""``benchmarks/scale.py``'s reading of its rounds (no timing here): the per-round ratios of
the spread rate to the 1-project server's, their median and how far it can be trusted; and
the pinning of a measured server to its CPU."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.benchmarks import load_script
from tests.support.serve import wait_for


@pytest.fixture(scope="module")
def scale() -> ModuleType:
    return load_script("scale")


def rounds(ratios: list[float]) -> list[dict[str, int]]:
    return [{"base": 10_000, "one": 10_000, "all": round(10_000 * r)} for r in ratios]


def test_few_rounds_give_the_median_and_range_only(scale: ModuleType) -> None:
    assert scale.paired(None) == ""
    assert scale.paired(rounds([0.9])) == ""
    assert scale.paired(rounds([0.8, 1.0, 0.9])) == "; rounds 0.90x median, 0.80-1.00"
    # rounds without the 1-project server (its own run) count for nothing
    assert scale.paired([{"one": 5, "all": 4}, {"one": 5, "all": 4}]) == ""


def test_nine_rounds_on_add_the_medians_interval(scale: ModuleType) -> None:
    same = scale.paired(rounds([0.93] * 9))
    assert same == "; rounds 0.93x median, 0.93-0.93 (median's 95 % interval 0.93-0.93)"
    spread = [0.63, 0.78, 0.84, 0.88, 0.9, 0.91, 0.93, 0.95, 0.97, 1.02, 1.28]
    text = scale.paired(rounds(spread))
    assert text.startswith("; rounds 0.91x median, 0.63-1.28 (median's 95 % interval ")
    low, high = (float(x) for x in text.rsplit(" ", 1)[1].rstrip(")").split("-"))
    assert 0.78 <= low < 0.91 < high <= 1.02  # around the median, never the extremes
    assert scale.paired(rounds(spread)) == text  # seeded: the same rounds, the same words


@contextlib.contextmanager
def _child(code: str) -> Iterator[int]:
    """A Python process running ``code``, once it has printed ``ready``; killed after."""
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
            yield proc.pid
        finally:
            proc.kill()


def test_a_server_is_pinned_with_every_thread(scale: ModuleType) -> None:
    cpu = sorted(os.sched_getaffinity(0))[0]
    # a process with two threads besides its main one, started before it is pinned
    code = (
        "import sys, threading, time\n"
        "for _ in range(2): threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
        "print('ready', flush=True); time.sleep(30)\n"
    )
    with _child(code) as pid:
        try:
            scale.PIN.server = ["taskset", "-c", str(cpu)]
            scale.pin(pid)
            tasks = [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]
            assert len(tasks) == 3
            assert all(os.sched_getaffinity(t) == {cpu} for t in tasks)
        finally:
            scale.PIN.server = []


def test_nothing_is_pinned_when_pinning_is_off(scale: ModuleType) -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        before = os.sched_getaffinity(proc.pid)
        scale.pin(proc.pid)  # PIN.server empty
        assert os.sched_getaffinity(proc.pid) == before
    finally:
        proc.kill()
        proc.wait()


def _state(pid: int) -> str:
    """A process's state letter (``T``: stopped)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_servers_take_turns_one_running_the_others_stopped(scale: ModuleType) -> None:
    procs = [subprocess.Popen(["sleep", "60"]) for _ in range(3)]
    groups = [[p.pid] for p in procs]
    running: list[int] = []

    def done() -> bool:  # called after each turn's switch, the switch held meanwhile
        stopped = [p.pid for p in procs if wait_for(lambda p=p: _state(p.pid) == "T", 1)]
        (awake,) = [p.pid for p in procs if p.pid not in stopped]
        running.append(awake)
        return len(running) == 7

    try:
        assert scale.take_turns(groups, done, 0.01) == 6
        pids = [p.pid for p in procs]
        assert running == [pids[n % 3] for n in range(7)]  # each in turn, in order
        assert all(_state(pid) != "T" for pid in pids)  # all running again on return

        def fail() -> bool:
            raise RuntimeError("wrk failed")

        with pytest.raises(RuntimeError):
            scale.take_turns(groups, fail, 0.01)
        assert all(_state(pid) != "T" for pid in pids)  # also after an error
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def test_cpu_time_counts_every_thread_even_one_that_exited(scale: ModuleType) -> None:
    code = (
        "import threading, time\n"
        "def spin():\n"
        "    n = 0\n"
        "    while n < 2_000_000: n += 1\n"
        "thread = threading.Thread(target=spin); thread.start(); thread.join()\n"
        "print('ready', flush=True); time.sleep(30)\n"
    )
    with _child(code) as pid:
        assert scale.family(pid) == [pid]
        # join() returns as the thread's Python side ends; the kernel's task goes a moment later
        assert wait_for(lambda: len(list(Path(f"/proc/{pid}/task").iterdir())) == 1, 5)
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
        live = sum(int((t / "schedstat").read_text().split()[0]) for t in tasks)
        assert len(tasks) == 1  # the spinning thread is gone, and so is its time there
        spent = scale.cpu_ns([pid])
        assert spent > live > 0  # still counted here
        assert scale.cpu_ns([pid, 999_999_999]) == spent  # asleep; a gone pid: 0


def test_a_whole_core_takes_the_background_once(scale: ModuleType) -> None:
    # 1,000 requests of 1 ms each over 4 wall seconds by turns, the server taking 2 % of a
    # core for its background work: 80 ms of it counted, twice its share of the 2 s it ran.
    # At a whole core 2 % goes to that work and 98 % to requests: 980 a second.
    assert scale.at_full_core(1000, 1.08, 4.0, 0.02) == pytest.approx(980)
    assert 1000 / 1.08 < 980  # the plain rate per CPU-second undercounts it
    assert scale.at_full_core(1000, 1.08, 4.0, 0.0) == pytest.approx(1000 / 1.08)
    assert scale.at_full_core(0, 1.0, 4.0, 0.02) == 0.0
    assert scale.at_full_core(10, 0.05, 4.0, 0.02) == 0.0  # nothing left for the requests


def test_the_idle_share_is_each_servers_own_cpu_per_wall_second(scale: ModuleType) -> None:
    busy = "print('ready', flush=True)\nwhile True: pass\n"
    calm = "import time\nprint('ready', flush=True); time.sleep(30)\n"

    class Server:  # what idle_share reads of a ServerProcess
        def __init__(self, pid: int) -> None:
            self.proc = type("Proc", (), {"pid": pid})()

    with _child(busy) as spinning, _child(calm) as sleeping:
        spin, sleep = scale.idle_share([Server(spinning), Server(sleeping)], 0.6, windows=3)
        assert 0.1 < spin <= 1.05  # a core at most (CI shares it with the suite)
        assert 0 <= sleep < 0.05
