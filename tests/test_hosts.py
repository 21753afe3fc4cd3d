"""Which Host headers a loopback-bound server answers."""
import pytest

from genimg.serve.hosts import host_name, is_loopback


@pytest.mark.parametrize("host, name", [("127.0.0.1:7860", "127.0.0.1"), ("localhost", "localhost"),
                                        ("[::1]:7860", "[::1]"), ("evil.example:80", "evil.example"),
                                        ("127.0.0.1.evil.example", "127.0.0.1.evil.example")])
def test_host_name_drops_the_port_only(host, name):
    assert host_name(host) == name


def test_only_loopback_bindings_are_guarded():
    assert is_loopback(None) and is_loopback("127.0.0.1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.2")
