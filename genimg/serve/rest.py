"""``POST /v1/image``: one image per HTTP request, answered with the PNG itself.

Gradio's one-image API (``/generate_one``) costs a client three exchanges per image (join the queue, read its event
stream, fetch the file) and the client library's own work: 75-89 ms per request on the 2-core machine of
docs/serving.md, against 5-50 ms of generation. For the fast backends that overhead is the latency. This route runs
the same generation (the app's cached generator behind the same micro-batcher) and answers in one exchange:

    curl -s -X POST localhost:7860/v1/image -H 'content-type: application/json' \\
         -d '{"prompt": "a red apple", "backend": "gan"}' -o apple.png -D -

The response headers say where the time went: ``Server-Timing`` (the engine's stages, the PNG encoding and the
request's whole time in the server, which a browser's developer tools chart) and ``Genimg-Info`` (the request as drawn,
as compact JSON). A bad request gets HTTP 400 with ``{"error": ...}``; more than ``max_waiting`` requests in the
server at once get 503 with Retry-After, the same back-pressure as Gradio's queue size. A model that will not load
or an output that is not finite is a 500 with the reason.
"""
from __future__ import annotations

import io
import json
import logging
import os
import time
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from genimg.errors import GenerationTimeout, GenimgError, InvalidRequest, OutOfMemory, ServerBusy

logger = logging.getLogger("genimg.serve.rest")
PATH = "/v1/image"
MAX_BODY_BYTES = 16 * 1024  # a prompt is at most 1,000 characters; the rest are a few short fields
FIELDS = {"prompt": str, "backend": str, "steps": int, "precision": str, "seed": int}
INFO_KEYS = ("prompt", "drawn_as", "backend", "steps", "seed", "precision", "device", "batched_with")
# Genimg-Info also names the process that drew the image ("pid") and, on a cluster, the Ray Serve "replica".


@dataclass
class Drawn:
    """One drawn image as the route answers it: the PNG, the engine's stage timings, the request as drawn, and the
    server's own stages around the engine (``png``: encoding it; ``replica``: a cluster replica's whole time)."""

    png: bytes
    timings: dict
    info: dict
    server_stages: dict = field(default_factory=dict)


def image_route(generate, max_waiting: int, draw=None) -> Route:
    """The route, calling ``generate(prompt, backend, steps, precision, seed) -> Generation`` (blocking; run in a
    worker thread) for each request, or awaiting ``draw(...) -> Drawn`` when given (a cluster's replicas, see
    genimg.serve.cluster.RemoteDrawer); at most ``max_waiting`` requests are inside at once."""
    endpoint = ImageEndpoint(draw or in_process(generate), max_waiting)
    return Route(PATH, endpoint.handle, methods=["POST"], name="genimg_image")


def in_process(generate):
    """An ``ImageEndpoint`` drawer for a blocking ``generate(**arguments) -> Generation`` in this process."""
    async def draw(**arguments) -> Drawn:
        result = await run_in_threadpool(generate, **arguments)
        encode_start = time.perf_counter()
        png = encode_png(result.images[0])
        info = {**{key: result.info.get(key) for key in INFO_KEYS}, "pid": os.getpid()}
        return Drawn(png, result.timings, info, {"png": (time.perf_counter() - encode_start) * 1000})
    return draw


class ImageEndpoint:
    """The ``POST /v1/image`` contract over an async ``draw(prompt, backend, steps, precision, seed) -> Drawn``: the
    app's in-process generator (``in_process``) or a Ray Serve deployment (genimg.serve.cluster)."""

    def __init__(self, draw, max_waiting: int):
        self.draw = draw
        self.max_waiting = max_waiting
        self.inside = 0  # requests past the door (only the event loop's thread changes it)

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        if self.inside >= self.max_waiting:
            return busy(f"The server is busy ({self.inside} requests in progress); try again shortly.")
        self.inside += 1
        try:
            drawn = await self.draw(**parse_body(await read_body(request)))
        except InvalidRequest as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        except (GenerationTimeout, OutOfMemory, ServerBusy) as error:  # the request was fine; the server could not
            return busy(str(error))
        except GenimgError as error:  # a model that would not load, an output that was not finite
            return JSONResponse({"error": str(error)}, status_code=500)
        except Exception as error:  # noqa: BLE001 - a client gets a message, never a dropped connection
            logger.exception("unexpected error in %s", PATH)
            return JSONResponse({"error": f"Unexpected {type(error).__name__}: {error}"}, status_code=500)
        finally:
            self.inside -= 1
        server_ms = (time.perf_counter() - started) * 1000
        headers = {"Server-Timing": server_timing(drawn.timings, {**drawn.server_stages, "server": server_ms}),
                   "Genimg-Info": json.dumps(drawn.info, separators=(",", ":"), ensure_ascii=True),
                   "Cache-Control": "no-store"}
        return Response(drawn.png, media_type="image/png", headers=headers)


def busy(message: str) -> JSONResponse:
    """503 with Retry-After: the request was fine, the server could not take or finish it now; send it again."""
    return JSONResponse({"error": message}, status_code=503, headers={"Retry-After": "1"})


async def read_body(request: Request) -> bytes:
    """The body, refused past MAX_BODY_BYTES without reading the rest."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise InvalidRequest(f"The request body must be JSON of at most {MAX_BODY_BYTES} bytes.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise InvalidRequest(f"The request body must be JSON of at most {MAX_BODY_BYTES} bytes.")
    return body


def parse_body(body: bytes) -> dict:
    """The JSON object's fields, type-checked; genimg validates their values (steps, seed ranges, backend names)."""
    try:
        fields = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidRequest(f"The request body is not JSON ({error}).") from error
    if not isinstance(fields, dict) or "prompt" not in fields:
        raise InvalidRequest('Send a JSON object with at least "prompt", e.g. {"prompt": "a red apple"}.')
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise InvalidRequest(f"Unknown field(s) {', '.join(sorted(unknown))}: choose from {', '.join(FIELDS)}.")
    for name, value in fields.items():
        if isinstance(value, bool) or not isinstance(value, FIELDS[name]):
            raise InvalidRequest(f"{name} must be {'text' if FIELDS[name] is str else 'a whole number'}, "
                                 f"got {value!r}.")
    return {"steps": 0, "seed": 0, **fields}  # backend and precision: the server's defaults


def encode_png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)  # 64x64: level 1 is ~0.2 ms and a few hundred bytes larger
    return buffer.getvalue()


def server_timing(timings: dict, server_stages: dict) -> str:
    """The W3C Server-Timing header: each engine stage, then the server's own stages (the PNG encoding, a replica's
    whole time, the request's total in the server)."""
    entries = [("engine" if name == "total" else name, ms) for name, ms in timings.items()]
    entries += list(server_stages.items())
    return ", ".join(f"{''.join(c if c.isalnum() or c in '-_' else '-' for c in name)};dur={ms:.2f}"
                     for name, ms in entries)


def parse_server_timing(header: str) -> dict[str, float]:
    """``server_timing``'s header back as {name: ms} (what a client of this route reads)."""
    return {entry.split(";dur=")[0].strip(): float(entry.split(";dur=")[1]) for entry in header.split(",")}
