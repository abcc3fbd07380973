"""Poison records: a batch's stages run in a child process forked from the worker, so that a document that crashes
it (a segfault in a C extension, os._exit), hangs it (a regular expression that holds the GIL) or drives it past
its memory limit costs that document, not the worker, the batch or the run.

The child (a Sandbox) is forked once and serves batch after batch, so it stays warm; it inherits the worker's
set-up stages (models loaded once, shared copy-on-write), gets each batch over a pipe and sends the result back the
same way. While it runs a batch, it reports the stage and the batch row it works on in a few bytes of shared memory
(curate.inflight), and the parent watches three things:

- its exit: killed by a signal or exited without a result -> `worker_crashed` (the signal or exit code named);
- the row it works on: unchanged for longer than the stage's per-record deadline -> the parent kills it,
  `stage_timeout` (a stage that does not report rows gets the deadline times its rows for the whole batch);
- its memory: the child's data segment is capped (RLIMIT_DATA) at what it had plus the limit, so a runaway
  allocation fails with MemoryError in the stage (the row is then rejected by the segment runner, no kill), and the
  parent kills a child whose resident memory grows past the limit some other way -> `out_of_memory`.

A failed child is replaced by a fresh fork. When the row is known, it is rejected and the rest of the batch runs
again: one extra run per poison record (a crash is confirmed once first, so that a worker killed from outside, a
transient failure, rejects nothing). When it is not known, the batch is bisected until the record is alone. A
failure never escapes to Ray, whose task retries are bounded (engine.task_retries) and left to transient failures:
a node lost, a worker killed.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import pickle
import resource
import select
import signal
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from curate import inflight

log = logging.getLogger("curate.engine")

REASONS = ("worker_crashed", "stage_timeout", "out_of_memory")
_HELD = (signal.SIGINT, signal.SIGTERM)
OUTSIDE_STAGES = 60.0  # seconds an isolated child may spend outside any stage of a batch (engine.record_deadline > 0)
_POLL = 0.02  # seconds between looks at a running child (the deadline and memory checks)
_PAGE = os.sysconf("SC_PAGE_SIZE")


def default_memory_limit() -> int:
    """Half the machine's memory shared among its CPUs, at least 1 GiB: what one batch may add to its worker."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(1 << 30, total // 2 // max(1, os.cpu_count() or 1))


@dataclass
class Limits:
    """What an isolated batch may take: seconds per record per stage, bytes beyond the worker's own."""

    deadlines: list[float]  # per stage of the segment; 0 = none
    memory: int  # bytes; 0 = no limit


class Failure(NamedTuple):
    """How a child ended without a result: `reason` (one of REASONS), the stage index and batch row it was on
    (-1: not known), and what happened in words."""

    reason: str
    stage: int
    row: int
    detail: str


class ChildError(Exception):
    """An exception raised in the child that could not be sent back as itself."""


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _vm_data(pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmData:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


_BUF = None


def _buffer() -> Any:
    global _BUF
    if _BUF is None:
        _BUF = inflight.shared_buffer()
    return _BUF


def _serve(target: Callable[..., Any], requests: int, replies: int, buf: Any, memory: int) -> None:
    """The forked child: run target(*args) for each request until the pipe closes; each reply is ("ok", result)
    or ("error", exception, traceback). It stays warm between batches: what libraries load or cache on first use
    (trafilatura's resources, compiled patterns) is paid once per child, not per batch."""
    import faulthandler

    faulthandler.disable()  # a crash is the parent's to report, in one line; no stack dump on the console
    _die_with_parent()
    if memory:
        try:
            _, hard = resource.getrlimit(resource.RLIMIT_DATA)
            soft = _vm_data() + memory
            if hard != resource.RLIM_INFINITY:
                soft = min(soft, hard)
            resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))
        except (ValueError, OSError):
            pass
    inflight.attach(buf)
    while True:
        data = _read_frame(requests)
        if data is None:
            return
        try:
            message: Any = ("ok", target(*pickle.loads(data)))
        except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
            message = ("error", e, traceback.format_exc())
        try:
            reply = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as e:  # noqa: BLE001
            text = message[2] if message[0] == "error" else f"{type(e).__name__}: {e}"
            reply = pickle.dumps(("error", ChildError(text), text))
        _write_frame(replies, reply)
        del message, reply


def _write_frame(fd: int, data: bytes) -> None:
    view = memoryview(len(data).to_bytes(8, "little") + data)
    while view:
        view = view[os.write(fd, view) :]


def _read_frame(fd: int) -> bytes | None:
    """One length-prefixed frame; None at end of file."""
    head = _read_exactly(fd, 8)
    if head is None:
        return None
    return _read_exactly(fd, int.from_bytes(head, "little"))


def _read_exactly(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _die_with_parent() -> None:
    """The child gets SIGKILL when the worker that forked it dies (a worker killed or its node lost)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _note_signals() -> tuple[dict[int, Any], list[int]]:
    """In the main thread (the driver of the local runner): SIGINT and SIGTERM only noted until restored."""
    noted: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        return {}, noted
    handlers = {}
    for sig in _HELD:
        if signal.getsignal(sig) is not None:  # (None: a handler set outside Python, left alone)
            handlers[sig] = signal.signal(sig, lambda signum, frame: noted.append(signum))
    return handlers, noted


def _restore_signals(handlers: dict[int, Any], noted: list[int]) -> None:
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    for sig in noted[:1]:
        handler = handlers.get(sig)
        if callable(handler):
            handler(sig, None)
        elif handler != signal.SIG_IGN:
            os.kill(os.getpid(), sig)


class Sandbox:
    """A child process forked from this worker that runs `target(*args)` for one batch after another, watched
    by the worker (the deadline, the memory limit, its exit). A failure kills it; the next call forks a fresh one.
    It is also replaced when it has grown by a quarter of the memory limit (caches), so that a batch always has
    most of the limit to itself."""

    def __init__(self, target: Callable[..., Any]) -> None:
        self.target = target
        self.pid = 0
        self.requests = self.replies = -1
        self.vm0 = 0
        _SANDBOXES.add(self)

    def call(self, args: tuple, limits: Limits, rows: int) -> tuple[Any, Failure | None]:
        """target(*args) in the child; (its result, None) or (None, the Failure). An exception the target raised
        is raised here. `rows`: the rows of the batch, which scale the deadline of a stage that does not report
        the row it works on."""
        buf = _buffer()
        inflight.LAYOUT.pack_into(buf, 0, -1, -1)
        if not self.pid:
            self._start(limits.memory)
        data = pickle.dumps(args, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            _write_frame(self.requests, data)
            reply, failure = _watch(self.pid, self.replies, buf, limits, rows, _rss(self.pid))
        except BrokenPipeError:  # the child died between batches (killed from outside): a crash
            reply, failure = b"", Failure("worker_crashed", -1, -1, "the child was gone before the batch")
        except BaseException:  # interrupted (Ctrl-C, SIGTERM, an error here): the child goes too
            self.close()
            raise
        if failure is not None:
            self.close()
            return None, failure
        message = pickle.loads(reply)
        if limits.memory and _vm_data(self.pid) - self.vm0 > limits.memory // 4:
            self.close()  # grown with its caches: a fresh one for the next batch
        if message[0] == "error":
            error = message[1]
            if isinstance(error, MemoryError):
                self.close()
                stage, row = inflight.read(buf)
                return None, Failure("out_of_memory", stage, row, "MemoryError past the memory limit")
            raise error
        return message[1], None

    def _start(self, memory: int) -> None:
        buf = _buffer()
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        # Ctrl-C or SIGTERM arriving during fork() would run the driver's handler inside an at-fork callback,
        # where its exception is printed and lost: while forking, the handlers only note the signal.
        handlers, noted = _note_signals()
        # The child must never finalize this process's objects: a Ray ObjectRef or actor handle collected there
        # runs Ray's C++ reference counting on a copy whose locks other threads held at the fork (the child
        # hangs) or sends on the worker's own connections to Ray (the worker's next Ray call never gets its
        # answer). Frozen, the cyclic collector leaves everything that exists now alone in the child.
        frozen = gc.get_freeze_count()
        gc.freeze()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                os.close(req_w)
                os.close(rep_r)
                for other in list(_SANDBOXES):  # the pipes of this worker's other children are not the child's
                    if other is not self:
                        other._forget()
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's; the parent kills the child
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                _serve(self.target, req_r, rep_w, buf, memory)
            finally:
                os._exit(0)
        if not frozen:  # (objects someone else froze stay frozen, with those of this fork)
            gc.unfreeze()
        os.close(req_r)
        os.close(rep_w)
        self.pid, self.requests, self.replies = pid, req_w, rep_r
        self.vm0 = _vm_data(pid)
        _restore_signals(handlers, noted)

    def __del__(self) -> None:
        self.close()

    def _forget(self) -> None:
        for fd in (self.requests, self.replies):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.pid, self.requests, self.replies = 0, -1, -1

    def close(self) -> None:
        """Stop the child (if any); a later call starts a fresh one."""
        if self.pid:
            _kill(self.pid)
        self._forget()


_SANDBOXES: weakref.WeakSet[Sandbox] = weakref.WeakSet()


def close_all() -> None:
    """Stop every child of this process (the end of a phase on the local runner, and at exit)."""
    for box in list(_SANDBOXES):
        box.close()


atexit.register(close_all)


def run_child(fn: Callable[[], Any], limits: Limits, rows: int) -> tuple[Any, Failure | None]:
    """fn() in a child of its own (forked for this call, stopped after it); see Sandbox.call."""
    box = Sandbox(fn)
    try:
        return box.call((), limits, rows)
    finally:
        box.close()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _watch(pid: int, fd: int, buf: Any, limits: Limits, rows: int, rss0: int) -> tuple[bytes, Failure | None]:
    """Wait for one reply frame from the child at `pid`, enforcing the deadline and the memory limit."""
    chunks: list[bytes] = []
    got = 0
    need = -1
    place = inflight.read(buf)
    since = time.monotonic()
    last_mem = 0.0
    killed: Failure | None = None
    while True:
        ready, _, _ = select.select([fd], [], [], _POLL)
        if ready:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break  # the child is gone
            chunks.append(chunk)
            got += len(chunk)
            if need < 0 and got >= 8:
                head = b"".join(chunks)
                chunks, need = [head], 8 + int.from_bytes(head[:8], "little")
            if 0 <= need <= got:
                return b"".join(chunks)[8:need], None
            continue
        now = time.monotonic()
        now_place = inflight.read(buf)
        if now_place != place:
            place, since = now_place, now
        stage, row = place
        budget = limits.deadlines[stage] if 0 <= stage < len(limits.deadlines) else 0.0
        if budget and row < 0:
            budget *= max(1, rows)
        if stage < 0 and any(limits.deadlines):
            # The engine's own work in the child, before the first stage and after the last (no record's): a
            # child that stops there (a lock its parent held at the fork) is replaced rather than waited on.
            outside = max(OUTSIDE_STAGES, *limits.deadlines)
            if now - since > outside:
                what = f"stopped outside its stages for {outside:g} s"
                killed = Failure("worker_crashed", stage, row, what)
        elif budget and now - since > budget:
            what = f"past the deadline of {limits.deadlines[stage]:g} s per record"
            killed = Failure("stage_timeout", stage, row, what + ("" if row >= 0 else f" x {rows} rows"))
        if killed is None and limits.memory and now - last_mem > 0.2:
            last_mem = now
            grown = _rss(pid) - rss0
            if grown > limits.memory:
                killed = Failure("out_of_memory", stage, row, f"grew its worker by {grown >> 20} MiB")
        if killed is not None:
            _kill(pid)
            return b"", killed
    _, status = os.waitpid(pid, 0)
    stage, row = inflight.read(buf)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        detail = f"killed by {signal.Signals(sig).name}" if sig in signal.valid_signals() else f"signal {sig}"
    else:
        detail = f"exited with code {os.WEXITSTATUS(status)}"
    return b"", Failure("worker_crashed", stage, row, detail)


class Isolated(NamedTuple):
    """A record the guard took out of a batch: its row, the failure, and the runs it took to find it."""

    row: int
    failure: Failure
    runs: int


def guarded(
    run: Callable[[list[int]], tuple[Any, Failure | None]], n: int, label: str = "batch"
) -> tuple[list[Any], list[Isolated]]:
    """Run `run(rows)` over rows 0..n-1 until every row has run or is isolated. `run` runs the batch rows it gets
    (in order) in a child, which reports batch rows to curate.inflight, and returns (result, None) or (None, the
    Failure), as Sandbox.call does; returns the results and the isolated rows."""
    results: list[Any] = []
    isolated: list[Isolated] = []
    work: deque[list[int]] = deque([list(range(n))])
    crashed_once: set[tuple[int, ...]] = set()  # crashes seen once, by row (or part): a second one confirms it
    runs = 0
    while work:
        part = work.popleft()
        runs += 1
        result, failure = run(part)
        if failure is None:
            results.append(result)
            continue
        row = failure.row if failure.row in part else -1  # the child reports batch rows
        # A crash may be transient (the worker killed from outside): the whole batch, and a row before it is
        # rejected, run once more first. The halves of a bisection are not run twice.
        where: tuple[int, ...] | None = (row,) if row >= 0 else tuple(part) if len(part) in (n, 1) else None
        if failure.reason == "worker_crashed" and where is not None and where not in crashed_once:
            crashed_once.add(where)
            log.debug("%s: %s on row %s; running it again", label, failure.detail, row)
            work.appendleft(part)
            continue
        if row < 0 and len(part) == 1:
            row = part[0]
        if row >= 0:
            isolated.append(Isolated(row, failure, runs))
            rest = [r for r in part if r != row]
            if rest:
                work.appendleft(rest)
            continue
        half = len(part) // 2  # the row is not known: bisect
        log.debug("%s: %s on one of %d rows; bisecting", label, failure.detail, len(part))
        work.appendleft(part[half:])
        work.appendleft(part[:half])
    return results, isolated


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1000, "kib": 1 << 10, "m": 1 << 20, "mb": 10**6, "mib": 1 << 20}
_UNITS |= {"g": 1 << 30, "gb": 10**9, "gib": 1 << 30, "t": 1 << 40, "tb": 10**12, "tib": 1 << 40}


def parse_bytes(value: str | int) -> int:
    """`4GiB`, `512MB`, `2g` or a number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip().lower().replace(" ", "")
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(number) :]
    try:
        if unit not in _UNITS:
            raise ValueError(unit)
        return int(float(number) * _UNITS[unit])
    except ValueError:
        from curate.errors import ConfigError

        raise ConfigError(
            f"engine.memory_limit: cannot read '{value}' as a size", hint="write it like 4GiB, 512MB or 2000000000"
        ) from None


def limits_for(specs: list[Any], engine: Any) -> Limits | None:
    """The isolation limits of a segment of `specs` under the engine settings; None when engine.isolation is
    "none" or a stage of the segment asks for a GPU. Computed on the driver, so that a bad setting is one error
    before any worker starts."""
    if engine.isolation == "none":
        return None
    if any(s.resources.get("num_gpus") for s in specs):
        return None  # a CUDA context does not survive a fork: GPU stages run in their actor itself
    deadlines = [engine.record_deadline if s.deadline is None else s.deadline for s in specs]
    memory = default_memory_limit() if engine.memory_limit is None else parse_bytes(engine.memory_limit)
    return Limits([max(0.0, float(d)) for d in deadlines], max(0, memory))
