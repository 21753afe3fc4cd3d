"""genimg on Ray Serve: the same ``genimg.load(...)`` generators on many replicas, processes and machines.

    python -m genimg serve --replicas 2 --port 8000        # Ray on this machine, POST /v1/image on 127.0.0.1:8000
    serve run genimg.serve.cluster:app_builder backend=latent-lcm replicas=2   # Ray's own CLI, same application

Two deployments (docs/scaling.md draws them):

- ``Generators``: the part with replicas. Each replica is one process holding the generators it serves (genimg.load's
  cache) and running every generation on one thread. One-image requests are batched by ``@serve.batch`` and drawn by
  ``genimg.serve.batching.draw_batch``, the same code the app's in-process micro-batcher runs. ``generate`` serves
  the app's batch generations (the Generate tab) with any speed option.
- ``ImageIngress``: ``POST /v1/image`` with the contract of the app's route (genimg.serve.rest.ImageEndpoint: JSON in,
  PNG out, Server-Timing, 400 for bad input, 503 with Retry-After when full); Genimg-Info adds the ``replica`` and
  ``pid`` that drew the image.

A replica that dies with requests in flight loses none of them silently: each is sent again to a live replica
(generation is deterministic, so the image is the same) until its deadline, else answered with a 503 to retry.
``direct`` (``genimg serve --direct``) leaves the ingress out: Ray's proxy sends POST /v1/image straight to the
Generators replicas, which answer it with the same route. One hop less per request; a replica's death then reaches
its callers as Ray's plain 500 (send it again), as the proxy does not resend requests in flight.
"""
from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import ray
from ray import serve
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse

import genimg
from genimg.errors import GenimgError, InvalidRequest
from genimg.guards import Deadline
from genimg.options import Request
from genimg.serve.batching import draw_batch
from genimg.serve.limits import ServingLimits
from genimg.serve.remote import APP_NAME, GENERATORS, RemoteDrawer, drawn
from genimg.serve.rest import PATH, Drawn, ImageEndpoint, encode_png
from genimg.timing import Generation

OBJECT_STORE_BYTES = 128 * 1024 ** 2  # images travel as a few hundred bytes of PNG: the store holds next to nothing
MAX_BUSY_WAIT_S = 0.25  # the longest a request waits for its batch to fill while the replica is busy


@dataclass(frozen=True)
class ClusterSettings:
    """What ``genimg serve`` deploys; every field has a command-line flag and a key in a Serve config's ``args``."""

    backend: str = "latent-lcm"  # the default backend of /v1/image (a request may name another)
    precision: str = "fp32"
    speed_options: dict = field(default_factory=dict)  # as genimg.load takes them: tiny_decoder, engine, ...
    replicas: int = 1  # fixed replica count, unless min_replicas/max_replicas ask for autoscaling
    min_replicas: int | None = None
    max_replicas: int | None = None
    target_ongoing_requests: float | None = None  # autoscaling: requests per replica it aims at (default: a batch)
    num_cpus: float = 1.0  # per replica; its torch threads follow (at least 1)
    num_gpus: float = 0.0  # per replica: 1 = one replica per GPU
    batch_wait_ms: float = 2.0  # how long @serve.batch waits to fill a batch once one request is there
    # The Generators replicas answer HTTP themselves: one hop less per request (measured in docs/scaling.md), but a
    # replica that dies fails its requests in flight with Ray's plain 500 instead of sending them to another replica.
    direct: bool = False

    def autoscaling_config(self, limits: ServingLimits) -> dict | None:
        if self.min_replicas is None and self.max_replicas is None:
            return None
        low = self.min_replicas if self.min_replicas is not None else 1
        return {"min_replicas": low, "max_replicas": max(low, self.max_replicas or low),
                "target_ongoing_requests": self.target_ongoing_requests or limits.max_batch_size}

    def load_options(self) -> dict:
        return {"backend": self.backend, "precision": self.precision, **self.speed_options}


@serve.deployment(name=GENERATORS, health_check_period_s=2, health_check_timeout_s=30)
class Generators:
    """One replica: cached genimg generators, one torch thread, one-image requests batched by ``@serve.batch``."""

    def __init__(self, settings: dict, limits: dict):
        replica_grpc_on_loopback()
        self.settings, self.limits = ClusterSettings(**settings), ServingLimits(**limits)
        self.default_options = self.settings.load_options()
        self.replica = serve.get_replica_context().replica_id.unique_id
        self.pid = os.getpid()
        # Every generation runs on this one thread (genimg.threads explains why one thread, not many, on a CPU).
        self.torch_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="genimg-torch",
                                               initializer=_set_threads, initargs=(self.settings,))
        self.idle_wait_s, self.last_batch_s = self.settings.batch_wait_ms / 1000, 0.0
        self.batch_started: float | None = None  # perf_counter() when the running batch began; None when idle
        self.draw_batch.set_max_batch_size(self.limits.max_batch_size)  # its wait: set by draw, per request
        # When this deployment is the application's ingress (ClusterSettings.direct), it answers POST /v1/image.
        self.endpoint = ImageEndpoint(self._draw_here, max_waiting=self.limits.queue_size)
        # Loaded and warmed up before the replica says it is ready: its first request pays for neither.
        self.torch_thread.submit(self._warm_up).result()

    async def __call__(self, request: HttpRequest):
        return await answer(request, self.endpoint)

    async def _draw_here(self, **arguments) -> Drawn:
        return drawn(await self.draw(**arguments))

    def _warm_up(self) -> None:
        self._generator(self.default_options).generate("warm-up", seed=0)

    def _generator(self, options: dict):
        options = dict(options)
        return genimg.load(options.pop("backend"), **options)

    async def draw(self, prompt: str, backend: str | None = None, steps: int = 0, precision: str | None = None,
                   seed: int = 0, timeout_s: float | None = None, speed_options: dict | None = None) -> dict:
        """One image (the /v1/image request's fields; the app's Live adds its ``speed_options``), batched with
        whatever else waits for the same generator; bad input fails alone."""
        started = time.perf_counter()
        request = Request(prompt, steps or None, 1, seed).validated()
        options = {**self.default_options, **(speed_options or {}), **({"backend": backend} if backend else {}),
                   **({"precision": precision} if precision else {})}
        self.draw_batch.set_batch_wait_timeout_s(self._batch_wait_s())
        outcome = await self.draw_batch((options, request, Deadline(timeout_s or self.limits.request_timeout_s)))
        if isinstance(outcome, BaseException):
            raise outcome
        return {**outcome, "replica_ms": (time.perf_counter() - started) * 1000}

    def _batch_wait_s(self) -> float:
        """How long the batch this request may open waits for more. Ray forms the next batch while one runs and
        fixes its wait when its first request arrives (the value set here, just before that request joins): on a
        busy replica the next batch closes about when the running one should end (its start plus the last batch's
        time), so what arrives meanwhile joins it, as in the app's micro-batcher, and no time is lost after the
        running batch ends. An idle replica starts after ``batch_wait_ms``."""
        if self.batch_started is None:
            return self.idle_wait_s
        expected_end = self.batch_started + min(self.last_batch_s, MAX_BUSY_WAIT_S)
        return max(self.idle_wait_s, expected_end - time.perf_counter())

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.002)
    async def draw_batch(self, items: list[tuple]) -> list:
        self.batch_started = time.perf_counter()
        try:
            return await asyncio.get_running_loop().run_in_executor(self.torch_thread, self._draw_now, items)
        finally:
            self.last_batch_s, self.batch_started = time.perf_counter() - self.batch_started, None

    def _draw_now(self, items: list[tuple]) -> list:
        """Each item's payload, or the exception that stopped it (a model that will not load fails its items)."""
        outcomes, ready = [None] * len(items), []
        for index, (options, request, deadline) in enumerate(items):
            try:
                ready.append((index, (self._generator(options), request, deadline)))
            except GenimgError as error:
                outcomes[index] = error
        for (index, _), result in zip(ready, draw_batch([item for _, item in ready])):
            outcomes[index] = result if isinstance(result, BaseException) else self._payload(result)
        return outcomes

    def _payload(self, result: Generation) -> dict:
        """A Generation as it travels: PNG bytes (lossless, a few hundred bytes at 64x64), timings and info."""
        start = time.perf_counter()
        pngs = [encode_png(image) for image in result.images]
        return {"pngs": pngs, "timings": result.timings, "peak_memory": result.peak_memory,
                "info": {**result.info, "replica": self.replica, "pid": self.pid},
                "png_ms": (time.perf_counter() - start) * 1000}

    async def describe(self, load_options: dict) -> dict:
        """What the app asks of a configuration without generating: its default steps (None: one pass)."""
        return await asyncio.get_running_loop().run_in_executor(
            self.torch_thread, lambda: {"default_steps": self._generator(load_options).default_steps})

    async def generate(self, load_options: dict, prompt: str, steps=None, batch_size: int = 1, seed: int = 0,
                       guidance=None, timeout_s: float | None = None, negative_prompt: str | None = None,
                       layout: bool = True) -> dict:
        """A batch with any speed option (the app's Generate tab); not batched with other requests."""
        def run() -> dict:
            negative = {"negative_prompt": negative_prompt} if negative_prompt else {}
            return self._payload(self._generator(load_options).generate(
                prompt, steps=steps, batch_size=batch_size, seed=seed, guidance=guidance,
                timeout_s=timeout_s or self.limits.request_timeout_s, layout=layout, **negative))
        return await asyncio.get_running_loop().run_in_executor(self.torch_thread, run)


def replica_grpc_on_loopback() -> None:
    """On a one-machine cluster (node address 127.0.0.1, see ``loopback_node``), this replica's inter-deployment
    gRPC server listens on loopback instead of every interface (Ray Serve binds "[::]:0" when the replica finishes
    starting, after this constructor). A node with a routable address keeps Serve's default: other nodes call it."""
    from ray.serve._private import replica

    bind = getattr(replica, "add_port_to_grpc_server", None)
    if bind is None or getattr(bind, "loopback", False) or ray.util.get_node_ip_address() != "127.0.0.1":
        return

    def bind_on_loopback(server, address: str):
        return bind(server, "127.0.0.1:" + address.rsplit(":", 1)[1] if address.startswith("[::]:") else address)

    bind_on_loopback.loopback = True
    replica.add_port_to_grpc_server = bind_on_loopback


def _set_threads(settings: ClusterSettings) -> None:
    import torch

    torch.set_num_threads(max(1, int(settings.num_cpus)))


@serve.deployment(name="ImageIngress", ray_actor_options={"num_cpus": 0})
class ImageIngress:
    """``POST /v1/image`` (genimg.serve.rest's contract) in front of the Generators replicas."""

    def __init__(self, generators, limits: dict):
        replica_grpc_on_loopback()
        self.limits = ServingLimits(**limits)
        self.endpoint = ImageEndpoint(RemoteDrawer(generators, self.limits.request_timeout_s).draw,
                                      max_waiting=self.limits.queue_size)

    async def __call__(self, request: HttpRequest):
        return await answer(request, self.endpoint)


async def answer(request: HttpRequest, endpoint: ImageEndpoint):
    """The ingress's one route: POST /v1/image under the application's route prefix; 404 and 405 otherwise."""
    prefix = request.scope.get("root_path", "").rstrip("/")
    if request.url.path.removeprefix(prefix).rstrip("/") != PATH:
        return JSONResponse({"error": f"Not found: this server answers POST {PATH}."}, status_code=404)
    if request.method != "POST":
        return JSONResponse({"error": f"Use POST {PATH}."}, status_code=405, headers={"Allow": "POST"})
    return await endpoint.handle(request)


def build_application(settings: ClusterSettings, limits: ServingLimits | None = None):
    """The Serve application: the ingress bound to the Generators deployment with the settings' replicas."""
    limits = limits or ServingLimits.from_env()
    options = {"ray_actor_options": {"num_cpus": settings.num_cpus, "num_gpus": settings.num_gpus},
               # A batch runs while the next one forms; beyond that, requests queue at the caller's router.
               "max_ongoing_requests": 2 * limits.max_batch_size, "max_queued_requests": limits.queue_size}
    autoscaling = settings.autoscaling_config(limits)
    if autoscaling:
        options["autoscaling_config"] = autoscaling
    else:
        options["num_replicas"] = settings.replicas
    generators = Generators.options(**options).bind(asdict(settings), asdict(limits))
    if settings.direct:
        return generators
    ingress = ImageIngress.options(max_ongoing_requests=2 * limits.queue_size)
    return ingress.bind(generators, asdict(limits))


def app_builder(args: dict):
    """For Ray's own tools (``serve run`` / ``serve deploy`` with ``import_path: genimg.serve.cluster:app_builder``):
    ``args`` holds ClusterSettings' fields; any other key is a speed option (``tiny_decoder: true``)."""
    args = dict(args or {})
    known = {name: args.pop(name) for name in list(args) if name in ClusterSettings.__dataclass_fields__}
    speed = {**known.pop("speed_options", {}), **args}
    unknown = set(speed) - set(genimg.SpeedOptions.__dataclass_fields__)
    if unknown:
        raise InvalidRequest(f"Unknown setting(s) {', '.join(sorted(unknown))}: use ClusterSettings' fields or speed "
                             f"options ({', '.join(genimg.SpeedOptions.__dataclass_fields__)}).")
    return build_application(ClusterSettings(**known, speed_options=speed))


def start_ray(address: str | None, cpus: int | None) -> None:
    """Join ``address``, or start Ray on this machine with every Ray process listening on loopback only."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        return
    with loopback_node():
        ray.init(num_cpus=cpus, include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES,
                 log_to_driver=False, _node_ip_address="127.0.0.1")


@contextmanager
def loopback_node():
    """ray.init turns a loopback node address into the machine's routable one (so that other machines could join),
    and Ray's servers then listen on every interface. A one-machine cluster needs none of that: while this is open,
    127.0.0.1 stays 127.0.0.1 and the GCS, raylet, workers and agents listen on loopback only. Several machines:
    ``ray start --head --node-ip-address=...`` and ``--address`` (docs/scaling.md)."""
    from ray._private import services

    resolve = getattr(services, "resolve_ip_for_localhost", None)
    if resolve is not None:
        services.resolve_ip_for_localhost = lambda host: host
    try:
        yield
    finally:
        if resolve is not None:
            services.resolve_ip_for_localhost = resolve


def deploy(settings, host: str, port: int) -> str:
    """Serve's HTTP proxy on host:port and the genimg application behind it; the URL of POST /v1/image."""
    limits = ServingLimits.from_env()
    serve.start(http_options={"host": host, "port": port, "request_timeout_s": limits.request_timeout_s + 30})
    serve.run(build_application(settings, limits), name=APP_NAME, route_prefix="/", blocking=False)
    return f"http://{host}:{port}/v1/image"
