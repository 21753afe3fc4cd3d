"""With one torch thread in use, every CPU generation runs on it, loads run in passing threads, errors come back."""
import threading

import pytest

import genimg
from genimg import threads


@pytest.fixture
def one_thread():
    threads.use_one_torch_thread()
    yield
    threads.use_one_torch_thread(False)


def test_cpu_work_from_any_thread_runs_on_the_one_thread(one_thread):
    seen = []
    callers = [threading.Thread(target=lambda: seen.append(threads.on_torch_thread(threading.current_thread)))
               for _ in range(4)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(30)
    seen.append(threads.on_torch_thread(threading.current_thread))
    assert len(seen) == 5 and len(set(seen)) == 1 and seen[0].name.startswith("genimg-torch")
    assert threads.on_torch_thread(threading.current_thread, "cuda") is threading.current_thread()


def test_the_callers_context_variables_go_along(one_thread):
    import contextvars

    request = contextvars.ContextVar("request", default=None)
    request.set("event-7")
    assert threads.on_torch_thread(request.get) == "event-7"


@pytest.mark.slow
def test_the_one_thread_runs_with_the_callers_thread_count(one_thread):
    import torch

    before = torch.get_num_threads()
    try:
        # a generation there first (parallel work), so its OpenMP team exists before the caller asks for one thread
        genimg.load("gan", device="cpu").generate("grinning face", batch_size=2)
        torch.set_num_threads(1)
        assert threads.on_torch_thread(torch.get_num_threads) == 1
    finally:
        torch.set_num_threads(before)


def test_work_on_the_one_thread_may_ask_for_it_again(one_thread):
    assert threads.on_torch_thread(lambda: threads.on_torch_thread(lambda: 7)) == 7  # no deadlock


def test_errors_reach_the_caller(one_thread):
    with pytest.raises(ZeroDivisionError):
        threads.on_torch_thread(lambda: 1 / 0)
    with pytest.raises(KeyError):
        threads.in_passing_thread(lambda: {}["missing"])


def test_a_load_runs_in_a_thread_that_ends(one_thread):
    ran_on = threads.in_passing_thread(threading.current_thread)
    assert ran_on.name == "genimg-load" and not ran_on.is_alive()


def test_without_the_one_thread_everything_runs_inline():
    assert threads.on_torch_thread(threading.current_thread) is threading.current_thread()
    assert threads.in_passing_thread(threading.current_thread) is threading.current_thread()


def test_generations_and_their_timings_go_through_the_one_thread(one_thread, monkeypatch):
    generator = genimg.load("gan", device="cpu")
    ran_on, original = [], generator._generate

    def recording(*args, **kwargs):
        ran_on.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(generator, "_generate", recording)
    result = generator.generate("a red apple", seed=2)
    assert result.images[0].size == (64, 64) and result.timings["total"] > 0
    assert ran_on[0].startswith("genimg-torch")
