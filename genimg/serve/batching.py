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
        generator = self._generator()
        if generator is None:
            error = GenimgError("The model was unloaded while this request waited; send it again.")
            outcomes = [error] * len(batch)
        else:
            outcomes = draw_batch([(generator, request, deadline) for request, deadline, _ in batch])
        for (_, _, future), outcome in zip(batch, outcomes):
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)


def draw_batch(items: list[tuple]) -> list:
    """``[(generator, Request, Deadline), ...]`` -> for each item, its Generation or the exception that stopped it.

    The one place a batch of one-image requests is drawn, whoever formed it: the MicroBatcher's thread here, or
    Ray Serve's ``@serve.batch`` in a replica (genimg.serve.cluster). Items of one generator with the same steps and
    guidance run as one ``generate_batch`` call, which stops at the earliest deadline among them; an item whose
    deadline passed while it waited fails alone, and an error of one group reaches only that group's items."""
    outcomes: list = [None] * len(items)
    groups: dict[tuple, list[int]] = {}
    for index, (generator, request, deadline) in enumerate(items):
        try:
            deadline.check("waiting in the batch queue")
        except GenerationTimeout as error:
            outcomes[index] = error
            continue
        groups.setdefault((id(generator), request.steps, request.guidance), []).append(index)
    for members in groups.values():
        generator, first, _ = items[members[0]]
        limits = [items[i][2].remaining_s() for i in members if items[i][2].end is not None]
        try:
            results = generator.generate_batch([items[i][1].prompt for i in members],
                                               [items[i][1].seed for i in members], steps=first.steps,
                                               guidance=first.guidance, timeout_s=min(limits) if limits else None)
        except Exception as error:  # noqa: BLE001 - every caller of the group gets the error; the worker lives on
            results = [error] * len(members)
        for index, result in zip(members, results):
            outcomes[index] = result
    return outcomes


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
