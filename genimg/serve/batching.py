"""Dynamic batching: concurrent one-image requests for the same generator share a batch while the device is busy.

    batcher = batcher_for(genimg.load("latent-lcm"), max_batch_size=8)
    result = batcher.generate("a slice of pizza", steps=4, seed=3)   # from many threads at once

There is no waiting window: a batch is whatever arrived while the previous batch ran, so a lone request starts at once
and a busy device takes bigger batches. Image i of a batch is what ``generate(prompt_i, seed=seed_i)`` draws (see
``BaseGenerator.generate_batch`` for the one exception).
"""
from __future__ import annotations

import threading
import weakref
from concurrent.futures import Future

from genimg.errors import GenerationTimeout, GenimgError
from genimg.guards import Deadline
from genimg.options import Request
from genimg.timing import Generation


# How long the worker thread waits for more requests before it ends, so back-to-back requests reuse one thread and
# its OpenMP pool. Measured, it bought little (latent-lcm over /v1/image, one client: 41.5 -> 38.8 ms engine): the 2x
# slowdown in the server came from idle pools of other threads, which genimg.threads removes (the app's worker then
# only hands batches to the one torch thread). In a script that calls the batcher directly, the waiting worker keeps
# its pool for up to IDLE_S, as an idle thread that ran torch does (docs/serving.md).
IDLE_S = 30.0


class MicroBatcher:
    """A queue of one-image requests for one generator and a worker thread (started on demand, gone after
    ``idle_s`` without work) that runs up to ``max_batch_size`` of them with the same steps and guidance through
    ``generate_batch``."""

    def __init__(self, generator, max_batch_size: int = 8, idle_s: float = IDLE_S):
        # A weak reference: the registry decides how long a model stays loaded, not the batcher.
        self._generator = weakref.ref(generator)
        self.max_batch_size = max_batch_size
        self.idle_s = idle_s
        self._pending: list[tuple[Request, Deadline, Future]] = []
        self._lock = threading.Lock()
        self._more = threading.Condition(self._lock)
        self._working = False

    def generate(self, prompt: str, steps: int | None = None, seed: int = 0, guidance: float | None = None,
                 timeout_s: float | None = None) -> Generation:
        """One image, batched with whatever else is waiting; a bad request fails here, alone."""
        deadline = Deadline(timeout_s)
        request = Request(prompt, steps, 1, seed, guidance).validated()
        future: Future = Future()
        with self._lock:
            self._pending.append((request, deadline, future))
            start_worker, self._working = not self._working, True
            self._more.notify()
        if start_worker:
            threading.Thread(target=self._work, name="genimg-batcher", daemon=True).start()
        return future.result()

    def _next_batch(self) -> list:
        with self._lock:
            if not self._pending:
                self._more.wait(self.idle_s)
            if not self._pending:
                self._working = False
                return []
            first = self._pending[0][0]
            batch = [item for item in self._pending
                     if (item[0].steps, item[0].guidance) == (first.steps, first.guidance)][:self.max_batch_size]
            self._pending = [item for item in self._pending if all(item is not taken for taken in batch)]
            return batch

    def _work(self) -> None:
        while batch := self._next_batch():
            self._run(batch)

    def _run(self, batch: list) -> None:
        live = []
        for request, deadline, future in batch:
            try:
                deadline.check("waiting in the batch queue")
                live.append((request, deadline, future))
            except GenerationTimeout as error:
                future.set_exception(error)
        if not live:
            return
        requests, deadlines, futures = zip(*live)
        # The batch stops at the earliest deadline among its requests.
        limits = [deadline.remaining_s() for deadline in deadlines if deadline.end is not None]
        generator = self._generator()
        try:
            if generator is None:
                raise GenimgError("The model was unloaded while this request waited; send it again.")
            results = generator.generate_batch([r.prompt for r in requests], [r.seed for r in requests],
                                               steps=requests[0].steps, guidance=requests[0].guidance,
                                               timeout_s=min(limits) if limits else None)
        except Exception as error:  # noqa: BLE001 - every waiting caller gets the batch's error, the worker lives on
            for future in futures:
                future.set_exception(error)
            return
        for future, result in zip(futures, results):
            future.set_result(result)


_batchers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_batchers_lock = threading.Lock()


def batcher_for(generator, max_batch_size: int = 8) -> MicroBatcher:
    """The one batcher of this generator (created on first use; ``max_batch_size`` follows the latest call)."""
    with _batchers_lock:
        batcher = _batchers.get(generator)
        if batcher is None:
            batcher = _batchers[generator] = MicroBatcher(generator, max_batch_size)
        batcher.max_batch_size = max_batch_size
        return batcher
