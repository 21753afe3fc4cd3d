"""The malloc arena cap a long-running server sets (see genimg.serve.memory)."""
import platform

import pytest

from genimg.serve.memory import limit_malloc_arenas


def test_an_arena_limit_from_the_environment_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() == "MALLOC_ARENA_MAX=4 (from the environment)"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt(M_ARENA_MAX) is glibc's")
def test_glibc_arenas_are_capped(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_malloc_arenas(2) == "malloc arenas capped at 2"
