"""The owner of an output directory: a lock file with a lease, so that two runs never write one output.

    OUT/_lock/<generation>.json   {token, host, boot, pid, pid_start, attempt, command, since, renewed, lease_s}

Acquiring is creating the next generation's file exclusively, then reading it back: locally (and on NFS) a hard
link of a complete temporary file (`link` fails when the name exists), elsewhere fsspec `mode="xb"` (a conditional
PUT on object stores that have one); where a filesystem has neither, write then read back after a pause. One run
wins a fresh directory, and one run wins each take-over, because a take-over is creating generation n + 1. The
holder renews its record from a background thread; the highest generation is the holder, and a holder whose own
file is gone or outranked has lost the lock (it stops, and commits nothing). A run that finds a lock takes it over
when its holder is gone: at once when the holder ran on this host and its process no longer exists, otherwise
when the lease expired (hosts' clocks must agree to well within the lease), or when told to (--take-over).
"""

from __future__ import annotations

import _thread
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from curate.errors import OutputError
from curate.io.base import join

log = logging.getLogger("curate")

LOCK_DIR = "_lock"
# The holder rewrites its record every RENEW_SECONDS; a record not renewed for LEASE_SECONDS belongs to a dead run.
LEASE_SECONDS = 60.0
RENEW_SECONDS = 10.0
# Where a filesystem cannot create a file exclusively: how long a run waits before reading its record back.
SETTLE_SECONDS = 1.0


@dataclass(frozen=True)
class Holder:
    """One lock record: who holds the output, since when, renewed when."""

    generation: int
    token: str
    host: str
    boot: str
    pid: int
    pid_start: str
    attempt: int | None
    command: str
    since: float
    renewed: float
    lease_s: float

    @classmethod
    def parse(cls, generation: int, text: str) -> Holder:
        r = json.loads(text)
        return cls(
            generation=generation,
            token=str(r["token"]),
            host=str(r.get("host", "?")),
            boot=str(r.get("boot", "")),
            pid=int(r.get("pid", 0)),
            pid_start=str(r.get("pid_start", "")),
            attempt=r.get("attempt"),
            command=str(r.get("command", "")),
            since=float(r.get("since", 0.0)),
            renewed=float(r.get("renewed", 0.0)),
            lease_s=float(r.get("lease_s", LEASE_SECONDS)),
        )

    def describe(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        attempt = f", attempt {self.attempt}" if self.attempt else ""
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.since))
        return f"host {self.host}, pid {self.pid}{attempt}, since {since}, last renewed {now - self.renewed:.0f} s ago"


def this_host() -> tuple[str, str]:
    """(hostname, boot id): a pid means something only on the same host and the same boot."""
    boot = ""
    with contextlib.suppress(OSError):
        with open("/proc/sys/kernel/random/boot_id") as fh:
            boot = fh.read().strip()
    return socket.gethostname(), boot


def process_start(pid: int) -> str:
    """The start time of process `pid` (Linux: /proc/PID/stat field 22), so that a reused pid is not mistaken for
    the holder; "" where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def process_alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    now = process_start(pid)
    return not (started and now and now != started)


def verdict(holder: Holder, now: float | None = None) -> str | None:
    """Why `holder` is gone ("its process ... is gone", "its lease expired ..."), or None while it may be alive."""
    now = time.time() if now is None else now
    host, boot = this_host()
    if holder.host == host and holder.boot == boot and not process_alive(holder.pid, holder.pid_start):
        return f"its process {holder.pid} on this host is gone"
    if now - holder.renewed > holder.lease_s:
        return f"its lease expired ({now - holder.renewed:.0f} s since its last renewal, lease {holder.lease_s:.0f} s)"
    return None


class OutputLock:
    """Holds OUT/_lock while a run writes OUT; see the module docstring for the protocol."""

    def __init__(
        self,
        out: str,
        *,
        take_over: bool = False,
        lease_s: float | None = None,
        renew_s: float | None = None,
        command: str | None = None,
    ) -> None:
        self.out = out
        self.take_over = take_over
        self.lease_s = LEASE_SECONDS if lease_s is None else lease_s
        self.renew_s = RENEW_SECONDS if renew_s is None else renew_s
        self.command = command if command is not None else " ".join(["curate", *sys.argv[1:]])
        self.fs, self.root = url_to_fs(out)
        self.dir = join(self.root, LOCK_DIR)
        self.local = isinstance(self.fs, LocalFileSystem)
        self.token = uuid.uuid4().hex
        self.generation = 0
        self.attempt: int | None = None
        self.since = 0.0
        self.lost: str | None = None  # why this run no longer holds the lock
        self._created_root = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._main = threading.get_ident() == threading.main_thread().ident
        self._write_lock = threading.Lock()

    # -- the protocol --------------------------------------------------------------------------------------
    def acquire(self) -> OutputLock:
        """Become the output's owner, or raise OutputError naming the run that is."""
        try:
            if self.fs.exists(self.root) and self.fs.isfile(self.root):
                raise OutputError(f"output path '{self.out}' is a file", hint="give a directory for output.path")
            self._created_root = not self.fs.exists(self.root)
            self.fs.makedirs(self.dir, exist_ok=True)
            for _ in range(10):
                current, top = self._current()
                if current is not None:
                    gone = verdict(current)
                    if gone is None and not self.take_over:
                        raise self._held(current)
                    if gone is None and (current.host, current.boot) == this_host():
                        raise OutputError(
                            f"output '{self.out}' is being written by a live run on this host ({current.describe()})",
                            hint=f"stop that run (kill {current.pid}) first; --take-over is for a holder on a host "
                            "that is gone",
                        )
                    log.warning(
                        "taking over output %s from %s: %s",
                        self.out,
                        current.describe(),
                        gone or "--take-over",
                    )
                self.since = time.time()
                if self._create(top + 1) and self._confirm(top + 1):
                    self.generation = top + 1
                    self._remove_below(self.generation)
                    break
            else:
                raise OutputError(f"could not lock output '{self.out}': other runs kept taking it")
        except OutputError:
            self._cleanup_dir()
            raise
        except OSError as e:
            self._cleanup_dir()
            raise OutputError(
                f"cannot write to output '{self.out}': {e}", hint="check the path and its permissions"
            ) from e
        self._thread = threading.Thread(target=self._renew_loop, daemon=True, name="curate-lock")
        self._thread.start()
        return self

    def set_attempt(self, attempt: int) -> None:
        """Name the run attempt in the record (a second run's message says which attempt holds the output)."""
        self.attempt = attempt
        self._renew()
        self.check()

    def check(self) -> None:
        """Raise OutputError unless this run still holds the lock (called before committing the output)."""
        if self.lost is None and self.generation:
            self.lost = self._ownership()
        if self.lost is not None:
            raise OutputError(
                f"this run lost the lock on output '{self.out}': {self.lost}",
                hint="another run took the output over; it is that run's to finish",
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.renew_s + 5)
        if not self.generation:
            return
        try:
            with self._write_lock:
                mine = self._read(self.generation)
                if mine is not None and mine.token == self.token:  # ours, even if outranked: never another's
                    self.fs.rm(self._path(self.generation))
            self._cleanup_dir()
        except OSError as e:  # a leftover record is harmless: the next run sees a dead holder and takes over
            log.warning("could not remove the lock of output %s: %s", self.out, e)
        self.generation = 0

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.release()
        if self.lost is not None and exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            # the renewal thread interrupted the run because another run took the output over
            raise OutputError(
                f"this run stopped: it lost the lock on output '{self.out}' ({self.lost})",
                hint="another run took the output over; it is that run's to finish",
            ) from None

    # -- records -------------------------------------------------------------------------------------------
    def _path(self, generation: int) -> str:
        return join(self.dir, f"{generation:010d}.json")

    def _record(self) -> str:
        host, boot = this_host()
        pid = os.getpid()
        return json.dumps(
            {
                "token": self.token,
                "host": host,
                "boot": boot,
                "pid": pid,
                "pid_start": process_start(pid),
                "attempt": self.attempt,
                "command": self.command,
                "since": self.since,
                "renewed": time.time(),
                "lease_s": self.lease_s,
            }
        )

    def _generations(self) -> list[int]:
        self.fs.invalidate_cache(self.dir)  # object-store filesystems cache listings; another run's file is news
        if not self.fs.exists(self.dir):
            return []
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.dir, detail=False)]
        return sorted(int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit())

    def _read(self, generation: int) -> Holder | None:
        try:
            with self.fs.open(self._path(generation), "rb") as fh:
                return Holder.parse(generation, fh.read().decode("utf-8"))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            # being written (fallback filesystems) or damaged: alive until its file is older than a lease
            try:
                modified = self.fs.modified(self._path(generation)).timestamp()
            except Exception:
                modified = 0.0
            return Holder(generation, "?", "?", "", 0, "", None, "", modified, modified, LEASE_SECONDS)

    def _current(self) -> tuple[Holder | None, int]:
        """(the holder: the highest generation's record, or None when unlocked; the highest generation)."""
        gens = self._generations()
        if not gens:
            return None, 0
        return self._read(gens[-1]), gens[-1]

    def _create(self, generation: int) -> bool:
        """Create the generation's record if no run has; False when another run was first."""
        path = self._path(generation)
        data = self._record().encode("utf-8")
        self.fs.makedirs(self.dir, exist_ok=True)  # a releasing holder may just have removed the empty folder
        if self.local:
            tmp = join(self.dir, f".tmp-{self.token}-{generation}")
            with open(tmp, "wb") as fh:
                fh.write(data)
            try:
                os.link(tmp, path)  # atomic and exclusive, NFS included; the record is complete when it appears
                return True
            except FileExistsError:
                return False
            except OSError:  # no hard links here (some FUSE mounts): O_EXCL, the record is written just after
                try:
                    with open(path, "xb") as fh:
                        fh.write(data)
                    return True
                except FileExistsError:
                    return False
            finally:
                os.unlink(tmp)
        try:
            with self.fs.open(path, "xb") as fh:
                fh.write(data)
            return True
        except FileExistsError:
            return False
        except (ValueError, NotImplementedError, TypeError):
            pass  # no exclusive create on this filesystem: write, pause, read back (the last writer wins)
        except OSError:
            # A conditional PUT that lost the race is 412 Precondition Failed, which s3fs raises as OSError(EINVAL),
            # not FileExistsError: another run was first when a record is there that is not ours.
            self.fs.invalidate_cache(self.dir)
            theirs = self._read(generation)
            if theirs is not None and theirs.token != self.token:
                return False
            raise
        if self.fs.exists(path):
            return False
        self.fs.pipe_file(path, data)
        time.sleep(SETTLE_SECONDS)
        return True

    def _confirm(self, generation: int) -> bool:
        mine = self._read(generation)
        gens = self._generations()
        return mine is not None and mine.token == self.token and bool(gens) and gens[-1] == generation

    def _ownership(self) -> str | None:
        """None while this run holds the lock, else why it does not."""
        mine = self._read(self.generation)
        if mine is None or mine.token != self.token:
            return "its lock record was removed or replaced"
        gens = self._generations()
        if gens and gens[-1] > self.generation:
            other = self._read(gens[-1])
            return f"taken over by {other.describe() if other else 'another run'}"
        return None

    def _renew(self) -> None:
        with self._write_lock:
            if not self.generation or self._stop.is_set():
                return
            why = self._ownership()
            if why is not None:
                self._lose(why)
                return
            data = self._record().encode("utf-8")
            path = self._path(self.generation)
            if self.local:
                tmp = join(self.dir, f".tmp-{self.token}-renew")
                with open(tmp, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, path)
            else:
                self.fs.pipe_file(path, data)

    def _renew_loop(self) -> None:
        last_ok = time.time()
        while not self._stop.wait(self.renew_s):
            try:
                self._renew()
                last_ok = time.time()
            except Exception as e:  # a transient storage error: retry; past the lease, assume the lock is lost
                log.warning("renewing the lock of output %s failed: %s", self.out, e)
                if time.time() - last_ok > self.lease_s:
                    self._lose(f"it could not be renewed for {self.lease_s:.0f} s ({e})")
            if self.lost is not None:
                return

    def _lose(self, why: str) -> None:
        self.lost = why
        log.error("output %s: this run lost its lock (%s); stopping", self.out, why)
        if self._main and threading.current_thread() is not threading.main_thread():
            # The run stops at once rather than write beside the new owner: a real SIGINT wakes a main thread
            # blocked in a call (interrupt_main() alone waits for it to return), where Python handles SIGINT.
            handler = signal.getsignal(signal.SIGINT)
            if callable(handler):
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # type: ignore[arg-type]
            else:
                _thread.interrupt_main()

    def _remove_below(self, generation: int) -> None:
        """Drop the records a take-over outranked (and a renewal that raced it)."""
        for g in self._generations():
            if g < generation:
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm(self._path(g))

    def _cleanup_dir(self) -> None:
        """Leave the output as it was: no empty _lock folder, no output folder this run created for nothing."""
        try:
            if self.fs.exists(self.dir) and not self.fs.ls(self.dir, detail=False):
                self.fs.rmdir(self.dir)
            if self._created_root and self.fs.exists(self.root) and not self.fs.ls(self.root, detail=False):
                self.fs.rmdir(self.root)
        except OSError:
            pass

    def _held(self, holder: Holder) -> OutputError:
        host, boot = this_host()
        here = holder.host == host and holder.boot == boot
        expires = holder.renewed + holder.lease_s - time.time()
        how = (
            f"if that run is dead, rerun with --take-over (or wait: its lease expires in {max(expires, 0):.0f} s "
            "and the next run takes over by itself)"
            if not here
            else "wait for it to finish, or stop it; a run whose process is gone is taken over at once"
        )
        return OutputError(f"output '{self.out}' is being written by another run ({holder.describe()})", hint=how)
