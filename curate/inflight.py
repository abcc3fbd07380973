"""Which document a stage is working on, so that the engine can isolate a record that crashes, hangs or exhausts its
worker (curate.engine.isolate) without bisecting the batch.

While a batch runs in an isolated child process, the engine points this module at a small buffer it shares with
the parent: the index of the stage (set by the segment runner) and of the batch row it works on (set by `tracked`,
which the per-document loops of Filter and Mapper use, and which a stage's own batch loop can use too). Writing
two integers per document costs well under a microsecond; outside an isolated child `tracked` returns its input.

Standard library only: the stage API imports it.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

# stage index, row (a row of the batch the parent handed to the child; -1: none, or a stage's batch-level work)
LAYOUT = struct.Struct("<iq")
_buf: mmap.mmap | None = None
_origin: Sequence[int] = ()  # the batch row of each row of the table the current stage got
_offset = 0  # the first row of that table in `_origin` (a stage retried one row at a time)


def shared_buffer() -> mmap.mmap:
    """A buffer shared with children forked after this call (anonymous shared memory)."""
    buf = mmap.mmap(-1, LAYOUT.size)
    LAYOUT.pack_into(buf, 0, -1, -1)
    return buf


def attach(buf: mmap.mmap | None) -> None:
    """In an isolated child: report to `buf` from now on (None: stop reporting)."""
    global _buf
    _buf = buf


def isolated() -> bool:
    """Whether this process is an isolated child running a batch (engine.isolation: process)."""
    return _buf is not None


def worker_pid() -> int:
    """The pid of the worker process that runs this stage: the parent of an isolated child, else this process."""
    return os.getppid() if _buf is not None else os.getpid()


def read(buf: mmap.mmap) -> tuple[int, int]:
    """(stage, row) as last reported."""
    stage, row = LAYOUT.unpack_from(buf, 0)
    return stage, row


def stage(index: int, origin: Sequence[int], offset: int = 0) -> None:
    """The segment runner starts stage `index` on rows that are batch rows `origin[offset:]`."""
    global _origin, _offset
    _origin, _offset = origin, offset
    if _buf is not None:
        LAYOUT.pack_into(_buf, 0, index, -1)


def tracked(items: Iterable[T]) -> Iterable[T]:
    """`items` (one per row of the stage's batch, in order), reporting each row as the stage works on it: a stage
    that loops over its documents itself wraps the loop in this, so that a document that crashes or hangs its worker
    is known at once (without it the engine finds the document by bisecting the batch)."""
    if _buf is None:
        return items
    return _tracking(items, _buf)


def _tracking(items: Iterable[T], buf: mmap.mmap) -> Iterator[T]:
    origin, offset = _origin, _offset
    pack = LAYOUT.pack_into
    stage_index = LAYOUT.unpack_from(buf, 0)[0]
    n = len(origin)
    for j, item in enumerate(items):
        pack(buf, 0, stage_index, origin[offset + j] if offset + j < n else -1)
        yield item
    pack(buf, 0, stage_index, -1)
