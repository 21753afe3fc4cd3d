"""A server bound to this machine answers only requests addressed to this machine (DNS rebinding protection).

A web page on ``evil.example`` whose name is made to resolve to 127.0.0.1 (DNS rebinding) reaches a local app with
``Host: evil.example``; its requests are then same-origin to the browser, and Gradio, seeing a non-local Host,
treats the app as public and answers cross-origin requests too (gradio-app/gradio#13594). ``LoopbackHostGuard``
refuses (HTTP 421) any request whose Host is not a loopback name, for an app that listens on loopback only.
"""
from __future__ import annotations

from genimg.serve.uploads import refuse

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


def is_loopback(server_name: str | None) -> bool:
    return (server_name or "127.0.0.1") in LOOPBACK_NAMES


def host_name(host: str) -> str:
    """'127.0.0.1:7860' -> '127.0.0.1', '[::1]:7860' -> '[::1]'."""
    if host.startswith("["):
        return host[:host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class LoopbackHostGuard:
    """ASGI middleware: HTTP and websocket requests whose Host header names another machine are refused."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
            if host_name(host) not in LOOPBACK_NAMES:
                if scope["type"] == "websocket":
                    return await send({"type": "websocket.close", "code": 1008})
                return await refuse(send, 421, f"This server only answers requests for this machine, not {host!r}.")
        return await self.app(scope, receive, send)
