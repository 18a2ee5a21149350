"""Signature checks off the event loop, for :meth:`Verifier.verify_async`.

``cryptography`` releases the GIL while OpenSSL checks an EC, RSA or EdDSA signature, so a
check run on another thread overlaps with the event loop's own work: one process serving
asyncio requests uses every core. Everything else of a verification (parsing, claims, the
token cache) holds the GIL and stays on the loop, where a thread hop could not make it faster.

:class:`OffloadPool` is the hop made cheap, by batching both ways. The checks a loop asks
for in one iteration of the loop are collected and handed out together (when the iteration
ends, through ``loop.call_soon``, or as soon as :data:`CHUNK` have gathered), as jobs of
several checks split across the idle workers, through one ``queue.SimpleQueue``; a worker
hands a job's results back with one ``call_soon_threadsafe``, and not even that when an
earlier wake-up is still pending. Each check keeps its own result or exception, delivered to
its own awaiter. When every worker is busy, :meth:`OffloadPool.try_run` declines and the loop
checks the signature itself. Any :class:`concurrent.futures.Executor` works too
(``Verifier(..., offload=executor)``), at the price of one ``loop.run_in_executor`` per check
(``docs/benchmarks.md``, "Every core").
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import os
import queue
import threading
import weakref
from collections.abc import Awaitable, Callable

__all__ = ["OffloadPool", "Offloader", "default_pool", "default_workers", "offloader"]

#: A signature check bound to its key: ``check(signing_input, signature) -> bool``.
_Check = Callable[[bytes, bytes], bool]


def default_workers() -> int:
    """The CPUs this process may run on (``os.cpu_count()`` where affinity is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


#: One check asked for on a loop: the check, its two inputs and the future awaiting it.
_Job = tuple[_Check, bytes, bytes, asyncio.Future[bool]]
#: One finished check: its future, the result and the exception the check raised.
_Done = tuple[asyncio.Future[bool], bool, BaseException | None]

#: Checks per job a worker takes (a batch filled up to this goes to a worker at once, so that
#: workers start while the loop still collects; results come back one wake-up per job).
CHUNK = 16


class _Inbox:
    """One event loop's side of a pool: the checks it collects in the current loop
    iteration (handed to workers in jobs of several), and the finished checks it is handed
    back, one wake-up per job at most."""

    __slots__ = ("__weakref__", "_done", "_lock", "_waking", "batch", "flush_due", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weak: the pool keeps inboxes in a WeakKeyDictionary keyed by their loop.
        self.loop = weakref.ref(loop)
        #: (the loop's thread only) checks not yet handed to a worker, and whether a flush
        #: that hands them out is scheduled (``call_soon``)
        self.batch: list[_Job] = []
        self.flush_due = False
        self._done: collections.deque[_Done] = collections.deque()
        self._lock = threading.Lock()
        self._waking = False

    def deliver(self, results: list[_Done]) -> None:
        """(A worker thread.) Queue a job's results; wake the loop unless a wake-up is
        pending."""
        self._done.extend(results)
        with self._lock:
            if self._waking:
                return  # the pending _drain takes these results too
            self._waking = True
        loop = self.loop()
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: nobody awaits these results any more
            pass

    def _drain(self) -> None:
        """(The loop's thread.) Resolve every queued future."""
        with self._lock:
            self._waking = False
        done = self._done
        while done:
            future, ok, error = done.popleft()
            if future.done():  # the awaiting task was cancelled
                continue
            if error is None:
                future.set_result(ok)
            else:
                future.set_exception(error)


class OffloadPool:
    """Worker threads that run signature checks for event loops.

    ``workers`` defaults to :func:`default_workers` (the CPUs this process may use). The
    threads start with the first check and are daemons; :meth:`close` stops them. A forked
    child starts its own threads when it first needs them.

    Checks asked for in one iteration of a loop travel together: the loop collects them and,
    when the iteration ends (``loop.call_soon``) or :data:`CHUNK` have gathered, hands them
    to the workers as jobs of several checks, split across the idle workers; a worker hands
    a job's results back with one wake-up of the loop. Each check still has its own result
    or exception, delivered to its own awaiter.
    """

    def __init__(self, workers: int | None = None, *, name: str = "jwkit-verify") -> None:
        if workers is None:
            workers = default_workers()
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError("workers must be a positive number")
        self.workers = workers
        self.name = name
        self._lock = threading.Lock()
        self._closed = False
        self._reset()
        _POOLS.add(self)

    def _reset(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[list[_Job], _Inbox] | None]
        self._jobs = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # workers waiting for a job (changed under self._lock)
        self._inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Inbox]
        self._inboxes = weakref.WeakKeyDictionary()
        self._last: _Inbox | None = None

    def run(self, check: _Check, signing_input: bytes, signature: bytes) -> Awaitable[bool]:
        """``check(signing_input, signature)`` on a worker; await the result on this loop."""
        loop = asyncio.get_running_loop()
        inbox = self._inbox(loop)
        if not self._threads:
            self._start()
        return self._add(loop, inbox, check, signing_input, signature)

    def try_run(
        self, check: _Check, signing_input: bytes, signature: bytes
    ) -> Awaitable[bool] | None:
        """:meth:`run` when a worker waits for a job (or this loop is collecting a batch for
        one); ``None`` when every worker is busy.

        Then the caller had better check in place: the cores are busy anyway, and a check
        queued behind busy workers would pay for the hop and wait besides. (This is what
        :meth:`Verifier.verify_async` does: under full load the loop checks some signatures
        itself, and no core idles.)"""
        loop = asyncio.get_running_loop()
        inbox = self._inbox(loop)
        if not self._threads:
            self._start()
        elif not inbox.batch and self._idle <= self._jobs.qsize():
            return None
        return self._add(loop, inbox, check, signing_input, signature)

    def _add(
        self,
        loop: asyncio.AbstractEventLoop,
        inbox: _Inbox,
        check: _Check,
        signing_input: bytes,
        signature: bytes,
    ) -> Awaitable[bool]:
        future = loop.create_future()
        if not inbox.flush_due:
            inbox.flush_due = True
            loop.call_soon(self._flush, inbox)
        batch = inbox.batch
        batch.append((check, signing_input, signature, future))
        if len(batch) >= CHUNK:  # a full job: a worker may start on it now
            inbox.batch = []
            self._jobs.put((batch, inbox))
        return future

    def _flush(self, inbox: _Inbox) -> None:
        """(The loop's thread, once per loop iteration with checks asked for.) Hand the
        collected checks to the workers, split across the idle ones."""
        inbox.flush_due = False
        batch = inbox.batch
        if not batch:
            return
        inbox.batch = []
        if self._closed:
            error = RuntimeError("this OffloadPool is closed")
            for *_, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        jobs = self._jobs
        free = self._idle - jobs.qsize()
        parts = min(len(batch), max(free, 1))
        if parts == 1:
            jobs.put((batch, inbox))
            return
        size = -(-len(batch) // parts)
        for start in range(0, len(batch), size):
            jobs.put((batch[start : start + size], inbox))

    def _inbox(self, loop: asyncio.AbstractEventLoop) -> _Inbox:
        """``loop``'s inbox (made on its first check)."""
        inbox = self._last  # the inbox of the loop that asked last (one read: thread-safe)
        if inbox is not None and inbox.loop() is loop:
            return inbox
        with self._lock:
            inbox = self._inboxes.get(loop)
            if inbox is None:
                inbox = self._inboxes[loop] = _Inbox(loop)
            self._last = inbox
        return inbox

    def _start(self) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("this OffloadPool is closed")
            if self._threads:
                return
            for n in range(self.workers):
                thread = threading.Thread(target=self._work, name=f"{self.name}-{n}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def close(self) -> None:
        """Stop the workers once the checks already queued are done."""
        with self._lock:
            self._closed = True
            threads, self._threads = self._threads, []
        for _ in threads:
            self._jobs.put(None)
        for thread in threads:
            thread.join()

    def __repr__(self) -> str:
        return f"<OffloadPool {self.name!r} workers={self.workers}>"

    def _work(self) -> None:
        jobs, lock = self._jobs, self._lock
        while True:
            with lock:
                self._idle += 1
            job = jobs.get()
            with lock:
                self._idle -= 1
            if job is None:
                return
            batch, inbox = job
            results: list[_Done] = []
            for check, signing_input, signature, future in batch:
                # One check's exception is its own: the others of the job still run.
                try:
                    ok = check(signing_input, signature)
                except BaseException as exc:  # handed to the awaiting task, as verify() would
                    results.append((future, False, exc))
                else:
                    results.append((future, ok, None))
            inbox.deliver(results)


class _ExecutorOffload:
    """Checks on any :class:`concurrent.futures.Executor` (``loop.run_in_executor``)."""

    def __init__(self, executor: concurrent.futures.Executor) -> None:
        self.executor = executor

    def try_run(self, check: _Check, signing_input: bytes, signature: bytes) -> Awaitable[bool]:
        return asyncio.get_running_loop().run_in_executor(
            self.executor, check, signing_input, signature
        )


#: Where :meth:`Verifier.verify_async` runs an asymmetric signature check.
Offloader = OffloadPool | _ExecutorOffload


def offloader(option: bool | OffloadPool | concurrent.futures.Executor) -> Offloader | None:
    """The ``offload=`` option of :class:`~jwkit.verify.verifier.Verifier`: ``True`` for the
    shared :func:`default_pool`, ``False`` for none, or a pool or executor of one's own."""
    if option is True:
        return default_pool()
    if option is False:
        return None
    if isinstance(option, OffloadPool):
        return option
    if isinstance(option, concurrent.futures.Executor):
        return _ExecutorOffload(option)
    raise TypeError("offload must be a bool, an OffloadPool or a concurrent.futures.Executor")


_POOLS: weakref.WeakSet[OffloadPool] = weakref.WeakSet()
_default: OffloadPool | None = None
_default_lock = threading.Lock()


def default_pool() -> OffloadPool:
    """The pool every verifier with ``offload=True`` shares (created on first use)."""
    global _default
    pool = _default
    if pool is None:
        with _default_lock:
            pool = _default
            if pool is None:
                pool = _default = OffloadPool()
    return pool


def _after_fork() -> None:
    # A child has none of its parent's threads: queued jobs would never run.
    for pool in list(_POOLS):
        pool._lock = threading.Lock()
        pool._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
