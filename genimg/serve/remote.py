"""The calling side of genimg on Ray Serve (genimg.serve.cluster): what the ingress and the app (``python app.py
--ray``) use to reach the Generators deployment through a handle. A request whose replica died is sent again to a live
one until its deadline (generation is deterministic, so the image is the same); a full deployment is a ServerBusy.
"""
from __future__ import annotations

import asyncio
import io
import time

import ray
from ray import serve
from ray.exceptions import ActorDiedError, ActorUnavailableError, GetTimeoutError, RayActorError, RayTaskError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

from genimg.errors import GenerationTimeout, GenimgError, ServerBusy
from genimg.guards import Deadline
from genimg.serve.rest import INFO_KEYS, Drawn
from genimg.timing import Generation

APP_NAME = "genimg"
GENERATORS = "Generators"
# A replica's death reaches callers as one of these; the request is sent again to a live replica.
REPLICA_LOST = (ActorDiedError, ActorUnavailableError, RayActorError, DeploymentUnavailableError)
RETRY_PAUSE_S = 0.25  # between attempts: time for the router to hear of the death and the controller to act


class RemoteDrawer:
    """Sends requests to the Generators deployment through a handle: ``await draw(...)`` from an event loop (the
    ingress, the app's /v1/image), ``call(...)`` from a worker thread (the app's Gradio events). A request whose
    replica died is sent again to a live one until its deadline; a full deployment is a ServerBusy."""

    def __init__(self, handle, request_timeout_s: float):
        self.handle, self.request_timeout_s = handle, request_timeout_s

    async def draw(self, **arguments) -> Drawn:
        started = time.perf_counter()
        deadline = Deadline(self.request_timeout_s)
        for attempt in range(1, 100):
            response = self.handle.draw.remote(**arguments, timeout_s=deadline.remaining_s())
            try:
                payload = await asyncio.wait_for(response, timeout=deadline.remaining_s())
                break
            except asyncio.TimeoutError:
                response.cancel()
                raise GenerationTimeout(f"No image within {self.request_timeout_s:.0f} s; try again.") from None
            except BaseException as error:  # noqa: BLE001 - sorted out by _retry_or_raise
                _retry_or_raise(error, deadline, attempt)
                await asyncio.sleep(RETRY_PAUSE_S)
        else:
            raise ServerBusy("No replica could take the request; try again.")
        return drawn(payload, (time.perf_counter() - started) * 1000)

    def call(self, method: str, *args, timeout_s: float | None = None) -> dict:
        """``method(*args)``'s result on a replica, from a thread that is not running an event loop."""
        deadline = Deadline(timeout_s or self.request_timeout_s)
        for attempt in range(1, 100):
            response = getattr(self.handle, method).remote(*args)
            try:
                return response.result(timeout_s=deadline.remaining_s())
            except (GetTimeoutError, TimeoutError):
                response.cancel()
                raise GenerationTimeout(f"No result within {deadline.timeout_s:.0f} s; try again.") from None
            except BaseException as error:  # noqa: BLE001 - sorted out by _retry_or_raise
                _retry_or_raise(error, deadline, attempt)
                time.sleep(RETRY_PAUSE_S)
        raise ServerBusy("No replica could take the request; try again.")


class RemoteGenerator:
    """What the app holds instead of a local generator when it draws on the cluster: ``generate`` as a genimg
    generator's (the replica loads these options with genimg.load), and ``draw`` for one batched image. Progress
    callbacks stay on the replica: ``on_step`` is not called."""

    def __init__(self, drawer: RemoteDrawer, load_options: dict):
        self.drawer, self.load_options = drawer, dict(load_options)
        self._description = None

    @property
    def default_steps(self):
        if self._description is None:
            self._description = self.drawer.call("describe", self.load_options)
        return self._description["default_steps"]

    def generate(self, prompt: str, steps=None, batch_size: int = 1, seed: int = 0, guidance=None, on_step=None,
                 timeout_s: float | None = None, negative_prompt: str | None = None, layout: bool = True) -> Generation:
        return generation(self.drawer.call("generate", self.load_options, prompt, steps, batch_size, seed, guidance,
                                           timeout_s, negative_prompt, layout, timeout_s=timeout_s))

    def generate_batch(self, prompts: list[str], seeds: list[int], steps=None, guidance=None, on_step=None,
                       timeout_s: float | None = None) -> list[Generation]:
        """One image per (prompt, seed), each a ``draw`` (the replicas batch them with whatever else waits)."""
        return [self.draw(prompt, steps, seed, timeout_s) for prompt, seed in zip(prompts, seeds)]

    def draw(self, prompt: str, steps=None, seed: int = 0, timeout_s: float | None = None) -> Generation:
        """One image, batched on a replica with other one-image requests (``@serve.batch``)."""
        options = dict(self.load_options)
        backend, precision = options.pop("backend"), options.pop("precision")
        return generation(self.drawer.call("draw", prompt, backend, steps or 0, precision, seed, timeout_s, options,
                                           timeout_s=timeout_s))


def _retry_or_raise(error: BaseException, deadline: Deadline, attempt: int) -> None:
    """Returns when the request should be sent again (its replica died and time is left); raises what a caller
    should see otherwise: the genimg error a replica raised, or ServerBusy."""
    cause = error.cause if isinstance(error, RayTaskError) and error.cause is not None else error
    if isinstance(cause, GenimgError):
        raise cause from None
    if isinstance(cause, BackPressureError):
        raise ServerBusy("Every replica is busy and the queue is full; try again shortly.") from None
    if isinstance(cause, REPLICA_LOST):
        remaining = deadline.remaining_s()
        if remaining is None or remaining > RETRY_PAUSE_S:
            return
        raise ServerBusy(f"The replica drawing this request was lost ({attempt} attempts); try again.") from None
    raise error


def drawn(payload: dict, server_ms: float | None = None) -> Drawn:
    """A replica's payload as the /v1/image route answers it (the first image)."""
    info = {**{key: payload["info"].get(key) for key in INFO_KEYS}, "replica": payload["info"]["replica"],
            "pid": payload["info"]["pid"]}
    stages = {"png": payload["png_ms"], "replica": payload.get("replica_ms", 0.0)}
    return Drawn(payload["pngs"][0], payload["timings"], info, stages)


def generation(payload: dict) -> Generation:
    """A replica's payload as a genimg Generation (PIL images), as the app's local generators return it."""
    from PIL import Image

    images = [Image.open(io.BytesIO(png)).convert("RGB") for png in payload["pngs"]]
    return Generation(images, payload["timings"], payload["peak_memory"], payload["info"])


def generators_handle(address: str | None = None):
    """The Generators deployment of a running genimg application, joining the Ray cluster at ``address`` first
    (``auto``: the one started on this machine) unless this process is already part of one."""
    if not ray.is_initialized():
        ray.init(address=address or "auto", include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        return serve.get_deployment_handle(GENERATORS, app_name=APP_NAME)
    except Exception as error:  # noqa: BLE001 - Serve says "not found" in several ways across versions
        raise GenimgError(f"No genimg application on the Ray cluster at {address or 'auto'} ({error}); start one "
                          "with `python -m genimg serve`.") from error
