"""One thread for a server's CPU tensor work.

torch's CPU kernels run on an OpenMP thread pool that belongs to the thread that called them. A server calls models
from many threads (Gradio's worker threads, each generator's micro-batcher); every one that has run a tensor op keeps
its own pool alive, and on a machine with few cores the idle pools slow the busy one down: latent-lcm's 1-step
generation took 55 ms instead of 24 on two cores while one other thread that had once run torch sat idle (measured in
one process, medians of 15; docs/serving.md). So a server routes every CPU generation through one long-lived thread
(``use_one_torch_thread()``, which the app calls at start-up) and loads models in threads that end with the load.

Scripts and the command line leave it off: their main thread is already the one thread.
"""
from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

import torch

# Models load one at a time (generating with loaded ones goes on meanwhile): two threads importing diffusers' lazy
# modules at once fail with "partially initialized module", and from_pretrained's empty-weights init patches torch
# for the whole process ("Cannot copy out of meta tensor"). Both were seen when the first requests for two backends
# arrived together (genimg.serve.soak). Re-entrant: a loader may load a part through a loader.
LOAD_LOCK = threading.RLock()

_state = {"executor": None, "thread": None}
_lock = threading.Lock()


def use_one_torch_thread(enabled: bool = True) -> None:
    """From now on, ``on_torch_thread`` runs CPU work on one dedicated thread (False: inline again)."""
    with _lock:
        if enabled and _state["executor"] is None:
            _state["executor"] = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="genimg-torch",
                initializer=lambda: _state.update(thread=threading.current_thread()))
        elif not enabled and _state["executor"] is not None:
            _state["executor"].shutdown(wait=True)
            _state.update(executor=None, thread=None)


def on_torch_thread(function, device: str = "cpu"):
    """``function()``, on the dedicated thread when one is in use and ``device`` is the CPU; inline otherwise (a GPU's
    work is queued on its streams, not on OpenMP pools). It runs in a copy of the caller's context variables, so
    what the caller's framework keeps there (Gradio's request and progress) is seen by the step callbacks. Exceptions
    reach the caller as they are. It also runs with the caller's torch thread count: once the dedicated thread has
    run parallel work, its OpenMP team keeps its size when another thread calls ``torch.set_num_threads`` (measured:
    2 threads there after the main thread set 1, and images 1/255 off those of the main thread)."""
    executor = _state["executor"]
    if executor is None or not str(device).startswith("cpu") or threading.current_thread() is _state["thread"]:
        return function()
    return executor.submit(contextvars.copy_context().run, _with_threads, torch.get_num_threads(), function).result()


def _with_threads(count: int, function):
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return function()


def in_passing_thread(function, device: str = "cpu"):
    """``function()`` in a thread that ends when it returns (with the dedicated thread in use, on the CPU): for long
    work such as loading a model, which should neither hold up generations on the dedicated thread nor leave an
    OpenMP pool behind in the calling thread."""
    if _state["executor"] is None or not str(device).startswith("cpu"):
        return function()
    outcome = {}

    def run():
        try:
            outcome["value"] = function()
        except BaseException as error:  # noqa: BLE001 - handed to the caller below
            outcome["error"] = error

    thread = threading.Thread(target=run, name="genimg-load", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
