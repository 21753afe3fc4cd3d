"""Locust load test of genimg's HTTP paths, on this machine only.

    locust -f genimg/serve/locustfile.py --headless -u 8 -r 8 -t 30s --host http://127.0.0.1:8000 RestUser
    locust -f genimg/serve/locustfile.py --headless -u 8 -r 8 -t 30s --host http://127.0.0.1:7860 GradioUser

- ``RestUser``: ``POST /v1/image`` (the app's route, or ``genimg serve``'s Ray Serve ingress): one exchange per image.
- ``GradioUser``: Gradio's ``/generate_one`` as its REST API serves it (join the queue, read the event stream, fetch
  the image file), timed as one request from the first byte sent to the image received.

Each user sends one request after another (no think time). Settings from the environment: GENIMG_LOCUST_BACKEND
(default latent-lcm), GENIMG_LOCUST_STEPS (default 1), GENIMG_LOCUST_PRECISION (default fp32); GENIMG_LOCUST_DETAILS
names a JSON file that receives, per answered request, what the server said of it (batch size, engine and server
milliseconds, replica, pid, when it ended) and the client's own milliseconds, which Locust's statistics cannot hold
per request. Any host other than loopback is refused. ``genimg.serve.locust_run`` runs this file and reads it back.
"""
from __future__ import annotations

import itertools
import json
import os
import time
from urllib.parse import urlparse

from locust import HttpUser, constant, events, task

# Nothing from genimg is imported: `import genimg` loads torch for seconds, and Locust's timers, set on gevent's clock
# before that, then fire at once (a 30 s run ended after 10 ms). These two mirror genimg.serve.rest.
PATH = "/v1/image"


def parse_server_timing(header: str) -> dict[str, float]:
    return {entry.split(";dur=")[0].strip(): float(entry.split(";dur=")[1]) for entry in header.split(",")}


PROMPTS = ["a slice of pizza", "a cute puppy", "red heart", "rocket", "grinning face", "dog face", "a red apple",
           "fire", "snowman", "sun with face", "star", "cat face"]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_counter = itertools.count()
_details: list[dict] = []


def next_request() -> dict:
    index = next(_counter)
    return {"prompt": PROMPTS[index % len(PROMPTS)], "seed": index,
            "backend": os.environ.get("GENIMG_LOCUST_BACKEND", "latent-lcm"),
            "steps": int(os.environ.get("GENIMG_LOCUST_STEPS", "1")),
            "precision": os.environ.get("GENIMG_LOCUST_PRECISION", "fp32")}


@events.init.add_listener
def refuse_other_hosts(environment, **_) -> None:
    host = urlparse(environment.host or "").hostname
    if host not in LOOPBACK:
        raise SystemExit(f"genimg's load test only drives servers on this machine (127.0.0.1), not {host!r}.")


@events.test_stop.add_listener
def write_details(environment, **_) -> None:
    path = os.environ.get("GENIMG_LOCUST_DETAILS")
    if path:
        with open(path, "w") as file:
            json.dump(_details, file)


class RestUser(HttpUser):
    """``POST /v1/image``: JSON in, PNG out; Server-Timing and Genimg-Info read from every answer."""

    wait_time = constant(0)

    @task
    def image(self) -> None:
        started = time.perf_counter()
        with self.client.post(PATH, json=next_request(), name=f"POST {PATH}", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                return
            timings = parse_server_timing(response.headers["Server-Timing"])
            info = json.loads(response.headers["Genimg-Info"])
            _details.append({"batched_with": info.get("batched_with"), "engine_ms": timings.get("engine"),
                             "server_ms": timings.get("server"), "client_ms": (time.perf_counter() - started) * 1000,
                             "replica": info.get("replica"), "pid": info.get("pid"), "t": time.time()})


class GradioUser(HttpUser):
    """Gradio's ``/generate_one`` over its REST API: three exchanges per image, timed together."""

    wait_time = constant(0)

    @task
    def generate_one(self) -> None:
        body = next_request()
        started = time.perf_counter()
        error, info = None, None
        try:
            data = [body["prompt"], body["backend"], body["steps"], body["precision"], body["seed"]]
            joined = self.client.post("/gradio_api/call/generate_one", json={"data": data}, name="(join)")
            joined.raise_for_status()
            stream = self.client.get(f"/gradio_api/call/generate_one/{joined.json()['event_id']}", name="(events)")
            stream.raise_for_status()
            image, info = completed_event(stream.text)
            self.client.get(image["url"].replace(self.host.rstrip("/"), ""), name="(image)").raise_for_status()
        except Exception as failure:  # noqa: BLE001 - reported to Locust as this request's failure
            error = failure
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.environment.events.request.fire(request_type="GRADIO", name="/generate_one", response_time=elapsed_ms,
                                             response_length=0, exception=error, context={})
        if error is None:
            _details.append({"batched_with": info.get("batched_with"), "engine_ms": info["timings_ms"]["total"],
                             "server_ms": info.get("server_total_ms"), "client_ms": elapsed_ms,
                             "replica": info.get("replica"), "pid": info.get("pid"), "t": time.time()})


def completed_event(stream: str) -> tuple[dict, dict]:
    """The (image, info) outputs of a Gradio event stream's ``complete`` event; its ``error`` event as an error."""
    event = None
    for line in stream.splitlines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event in ("complete", "error"):
            payload = json.loads(line.split(":", 1)[1])
            if event == "error":
                raise RuntimeError(f"Gradio error: {payload}")
            return payload[0], payload[1]
    raise RuntimeError("The event stream ended without a result.")
