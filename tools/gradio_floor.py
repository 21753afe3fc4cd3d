"""The floor Gradio's protocol sets under a one-image API: the same 64x64 PNG, drawn by nothing, served to N clients
through a Gradio event (gradio_client: join the queue, read the event stream, fetch the file) and through a plain
Starlette route on the same server (one POST answered with the PNG, as POST /v1/image). What is left between the two
is transport, not genimg.

    python -m tools.gradio_floor [--clients 8] [--seconds 15]     # from the repository root
"""
from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import socket
import threading
import time

import gradio as gr
from PIL import Image
from starlette.responses import Response
from starlette.routing import Route

IMAGE = Image.new("RGB", (64, 64), (200, 30, 40))
CALLS = itertools.count()


def png() -> bytes:
    buffer = io.BytesIO()
    IMAGE.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def one_image(prompt: str):
    # A different image per call, as a generator draws: Gradio caches an output file under the hash of its bytes and
    # rewrites it in place, so identical images served to concurrent clients can be read while being rewritten
    # (a client then fails with a short body and stops counting).
    image = IMAGE.copy()
    image.putpixel((0, 0), tuple(next(CALLS).to_bytes(3, "big")))
    return image, {"prompt": prompt}


async def rest(request):
    await request.body()
    return Response(png(), media_type="image/png")


def drive(clients: int, seconds: float, make_client, send) -> float:
    """Images per second ``clients`` threads get, each sending one request after another for ``seconds``; each
    thread's client is closed at the end (gradio_client's stream threads stop before the server does)."""
    counts, barrier, start = [0] * clients, threading.Barrier(clients), {}

    def loop(index: int) -> None:
        with contextlib.closing(make_client()) as client:
            send(client)  # warm-up: connection, first call
            if barrier.wait() == 0:
                start["at"] = time.perf_counter()
            while time.perf_counter() < start.get("at", time.perf_counter()) + seconds:
                send(client)
                counts[index] += 1

    threads = [threading.Thread(target=loop, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - start["at"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args()
    import httpx
    from gradio_client import Client

    with gr.Blocks() as demo:
        prompt, image, info = gr.Textbox(), gr.Image(type="pil", format="png"), gr.JSON()
        gr.Button().click(one_image, prompt, [image, info], api_name="generate_one", concurrency_limit=16)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    demo.queue()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                            app_kwargs={"routes": [Route("/v1/image", rest, methods=["POST"])]})
    try:
        gradio_rate = drive(args.clients, args.seconds, lambda: Client(url, verbose=False),
                            lambda client: client.predict("a red heart", api_name="/generate_one"))
        rest_rate = drive(args.clients, args.seconds, lambda: httpx.Client(timeout=60),
                          lambda session: session.post(url + "v1/image", json={"prompt": "a red heart"})
                          .raise_for_status())
    finally:
        demo.close()
    print(json.dumps({"clients": args.clients, "seconds": args.seconds, "gradio_client_images_per_s":
                      round(gradio_rate, 1), "rest_images_per_s": round(rest_rate, 1),
                      "ratio": round(gradio_rate / rest_rate, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
