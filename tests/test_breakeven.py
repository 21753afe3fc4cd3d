"""When compile pays for itself (genimg.serve.breakeven): the arithmetic, and measuring each part once."""
from types import SimpleNamespace

from genimg.serve.breakeven import BreakEven, BreakEvenCache


def test_break_even_is_the_first_call_extra_over_the_saving_per_image():
    result = BreakEven(first_call_ms=50_100.0, steady_ms=100.0, plain_ms=300.0, batch_size=4)
    assert result.first_call_extra_ms == 50_000.0 and result.saving_ms_per_image == 50.0
    assert result.images_to_break_even == 1000
    text = result.markdown()
    assert "first call took 50.1 s, 50.0 s more than a steady one" in text and "after 1,000 images" in text


def test_an_option_that_saves_nothing_never_breaks_even():
    result = BreakEven(first_call_ms=9000.0, steady_ms=30.0, plain_ms=29.0)
    assert result.images_to_break_even is None and "never pays for itself" in result.markdown()


def test_the_cache_times_the_first_call_once_and_measures_the_plain_time_once():
    cache, calls = BreakEvenCache(), []
    assert cache.result("config", 10.0, None, 1) is None  # no first call seen: nothing to say
    assert cache.first_call("config", lambda: calls.append("first")) > 0
    assert cache.first_call("config", lambda: calls.append("again")) is None
    plain_runs = iter([80.0, 40.0, 999.0])

    def plain_call():
        calls.append("plain")
        return SimpleNamespace(timings={"total": next(plain_runs)})

    first = cache.result("config", 10.0, plain_call, 1)
    second = cache.result("config", 12.0, plain_call, 1)
    assert first.plain_ms == second.plain_ms == 40.0  # warm-up (80) dropped, measured once
    assert calls == ["first", "plain", "plain"]
