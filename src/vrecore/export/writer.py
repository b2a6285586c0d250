"""Writer threads of an export: disk form, previews and files of computed frames, then their records.

The compute loop hands over each computed batch and goes on; a bounded number of batches is in
flight, so memory stays flat when storage is slower than compute. A frame's record (run, seconds,
fingerprint, and size, mtime and CRC-32 of each file) is appended only after all its files are in
place: the record is what marks the frame done.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from typing import Any

from vrecore.errors import StorageError
from vrecore.graph.executor import NodeOutput, to_stored
from vrecore.store.base import Store
from vrecore.store.files import describe_os_error
from vrecore.store.safe_paths import SymlinkRefused

__all__ = ["FrameWriter", "KeptWriterThreads"]

log = logging.getLogger("vrecore.export.writer")


class KeptWriterThreads:
    """Writer threads kept across exports run one after the other (many videos: `vrecore.export.clip.ClipRunner`),
    so that each export does not start and stop its own; a `FrameWriter` made while they are `lent` uses them."""

    def __init__(self) -> None:
        self._pools: dict[int, ThreadPoolExecutor] = {}

    @contextlib.contextmanager
    def lent(self) -> Iterator[None]:
        """Meanwhile, a `FrameWriter` made in this thread (and context) writes with these threads."""
        token = _KEPT.set(self)
        try:
            yield
        finally:
            _KEPT.reset(token)

    def pool(self, writers: int) -> ThreadPoolExecutor:
        if writers not in self._pools:
            self._pools[writers] = ThreadPoolExecutor(writers, thread_name_prefix="vre-write")
        return self._pools[writers]

    def close(self) -> None:
        """Stop the threads (after their queued writes)."""
        for pool in self._pools.values():
            pool.shutdown(wait=True)
        self._pools.clear()


_KEPT: contextvars.ContextVar[KeptWriterThreads | None] = contextvars.ContextVar("vre_kept_writer_threads",
                                                                                  default=None)


class FrameWriter:
    """Stores computed batches with ``writers`` threads; `drain` waits and re-raises the first error.

    A file-system error always stops the export (`StorageError`); another failure (e.g. a preview
    that cannot be made) is reported to ``on_failed`` and stops it only with exception_mode=stop.
    """

    def __init__(self, store: Store, run_id: str, digests: Mapping[str, str], *, writers: int = 2,
                 durable: bool = False, exception_mode: str = "stop",
                 on_written: Callable[[str, list[int], Any], None] | None = None,
                 on_failed: Callable[[str, list[int], str, str, Any], None] | None = None) -> None:
        self.store, self.run_id, self.digests, self.durable = store, run_id, digests, durable
        self.on_written, self.on_failed = on_written, on_failed
        self.exception_mode = exception_mode
        kept = _KEPT.get()
        self._own_pool = kept is None
        self._pool = ThreadPoolExecutor(writers, thread_name_prefix="vre-write") if kept is None else kept.pool(writers)
        self._slots = threading.BoundedSemaphore(writers * 2)
        self._pending: list[Future[None]] = []
        self._by_tag: dict[Any, list[Future[None]]] = {}

    def submit(self, output: NodeOutput, indices: list[int], tag: Any = None) -> None:
        """Store the frames ``indices`` of a computed batch (a subset of ``output.indices``); ``tag`` groups
        writes (e.g. a task) for `tag_done` and is handed to the callbacks."""
        if not indices:
            return
        self._reap()
        rows = [output.indices.index(i) for i in indices]
        whole = rows == list(range(len(output.indices)))
        memory = output.memory if whole else output.memory[rows]  # slicing keeps a view when whole
        stored = None if output.stored is None else (output.stored if whole else output.stored[rows])
        self._slots.acquire()
        future = self._pool.submit(self._write, output, indices, memory, stored, tag)
        future.add_done_callback(lambda _f: self._slots.release())
        self._pending.append(future)
        if tag is not None:
            self._by_tag.setdefault(tag, []).append(future)

    def wait_tag(self, tag: Any) -> None:
        """Wait until every write submitted with ``tag`` has finished (re-raises a failed one)."""
        for f in self._by_tag.pop(tag, []):
            f.result()

    def tag_done(self, tag: Any) -> bool:
        """Whether every write submitted with ``tag`` has finished (re-raises a failed one)."""
        futures = self._by_tag.get(tag, [])
        if not all(f.done() for f in futures):
            return False
        for f in futures:
            f.result()
        self._by_tag.pop(tag, None)
        return True

    def _write(self, output: NodeOutput, indices: list[int], memory: Any, stored: Any, tag: Any) -> None:
        node = output.node
        s, rep = node.settings, node.representation
        seconds = round(output.seconds / len(output.indices), 6)
        try:
            binary = None
            if s.binary_format != "none":
                binary = stored if stored is not None else to_stored(node, memory)
            images = rep.make_images(memory) if s.image_format != "none" else None
            written = self.store.write_frames(node.name, list(indices), binary, s.binary_format == "npz-compressed",
                                              images, s.image_format, durable=self.durable)
            records = [{"frame": i, "run": self.run_id, "seconds": seconds, "fp": self.digests.get(node.name),
                        "files": files} for i, files in zip(indices, written, strict=True)]
            self.store.append_records(node.name, records)
        except OSError as e:
            # The machine's problem (disk full, read-only, gone): every frame after would fail the same way.
            raise StorageError(describe_os_error(e, f"writing {self.store.root / node.name}")
                               + "; the frames written so far are kept") from e
        except SymlinkRefused:
            raise  # a link below the output folder: every frame after would be refused the same way
        except Exception as e:
            if self.on_failed is not None:
                self.on_failed(node.name, indices, f"writing failed: {type(e).__name__}: {e}", traceback.format_exc(),
                               tag)
            if self.exception_mode == "stop":
                raise
            return
        if self.on_written is not None:
            self.on_written(node.name, indices, tag)

    def _reap(self) -> None:
        still = []
        for f in self._pending:
            if f.done():
                f.result()
            else:
                still.append(f)
        self._pending = still

    def drain(self) -> None:
        """Wait for every write; re-raise the first failure."""
        pending, self._pending = self._pending, []
        self._by_tag.clear()
        error: BaseException | None = None
        for f in pending:
            try:
                f.result()
            except BaseException as e:  # noqa: BLE001 - the first failure is re-raised after all finished
                error = error or e
        if error is not None:
            raise error

    def close(self, *, wait: bool = True) -> None:
        """Stop the threads (after the queued writes when ``wait``); kept threads (`KeptWriterThreads`) go on, once
        this writer's writes have ended (or, without ``wait``, its queued ones are cancelled)."""
        if self._own_pool:
            self._pool.shutdown(wait=wait, cancel_futures=not wait)
            return
        pending, self._pending = self._pending, []
        if not wait:
            for f in pending:
                f.cancel()
        wait_for(pending)
