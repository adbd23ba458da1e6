"""Bounded background producers: decode ahead on a thread while the caller computes.

Memory stays flat because the queue has a fixed size; an exception on the producer thread is
re-raised in the consumer; closing the consumer stops the producer.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Prefetch(Generic[T]):
    """Iterate ``source`` on a daemon thread, holding at most ``maxsize`` items ahead."""

    def __init__(self, source: Iterable[T] | Callable[[], Iterable[T]], maxsize: int = 8, name: str = "prefetch") -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self._source = source
        self._queue: queue.Queue[object] = queue.Queue(maxsize=maxsize)
        self._stop = threading.Event()
        # the producer runs in the caller's context (e.g. core.media.strict_media applies there too)
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._run,), name=name, daemon=True)
        self._started = False

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            iterable = self._source() if callable(self._source) else self._source
            for item in iterable:
                if not self._put(item):
                    break
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self._put(_Failure(e))
        finally:
            self._put(_DONE)
            iterator_close = getattr(self._source, "close", None)
            if self._stop.is_set() and callable(iterator_close):
                try:
                    iterator_close()
                except Exception:  # noqa: BLE001 - best effort
                    pass

    def __iter__(self) -> Iterator[T]:
        if not self._started:
            self._started = True
            self._thread.start()
        try:
            while True:
                item = self._queue.get()
                if item is _DONE:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield item  # type: ignore[misc]
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        # drain so a blocked producer can see the stop flag
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        if self._started and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
