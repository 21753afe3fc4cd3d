"""What every backend shares: request validation, seeding, the text stage, timing and conversion to PIL."""
from __future__ import annotations

import dataclasses
import threading

import numpy as np
import torch
from PIL import Image

from genimg.backends.layout import arrange, object_captions
from genimg.backends.upscale import ImageUpscaler
from genimg.concepts import ConceptIndex, ConceptMatch
from genimg.errors import InvalidRequest, UnsupportedOption
from genimg.guards import (MAX_PIXELS_PER_REQUEST, Deadline, call_freeing_memory_on_oom, check_finite,
                           check_pixel_budget)
from genimg.images import read_image
from genimg.options import MAX_BATCH_SIZE, MAX_STEPS, Request, SpeedOptions
from genimg.sampling import strength_schedule
from genimg.scene import Scene
from genimg.text import TextEmbeddings, TextEncoder
from genimg.threads import on_torch_thread
from genimg.timing import Generation, StageTimer, peak_memory_bytes, reset_peak_memory

TRUNCATED_NOTE = "The prompt was longer than the text encoder's context and was truncated."


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) in [-1, 1] -> PIL images."""
    array = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(np.ascontiguousarray(image)) for image in array]


def from_pil(picture: Image.Image) -> torch.Tensor:
    """An RGB PIL image -> (1, 3, H, W) in [-1, 1], as an autoencoder takes it (the inverse of to_pil)."""
    return torch.from_numpy(np.asarray(picture, dtype=np.float32)).permute(2, 0, 1)[None] / 127.5 - 1


class ImageSeeds(int):
    """One seed per image of a batch of separate requests. As an int it is the first seed, for code that draws once
    per batch (a sampler's step noise); ``seeded_noise`` gives image i the noise a lone request with seeds[i] gets."""

    def __new__(cls, seeds):
        seeds = tuple(int(seed) for seed in seeds)
        value = super().__new__(cls, seeds[0])
        value.seeds = seeds
        return value


def seeded_noise(shape: tuple, seed: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    """Noise drawn on the CPU, so a seed gives the same images on every device."""
    if isinstance(seed, ImageSeeds):
        noise = torch.cat([torch.randn((1, *shape[1:]), generator=torch.Generator().manual_seed(image_seed))
                           for image_seed in seed.seeds])
    else:
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    return noise.to(device=device, dtype=dtype)


def step_generators(seed: int):
    """What a sampler draws its between-step noise from (LCM): one generator per image for a batch of separate
    requests (diffusers' schedulers take a list), so every image gets the noise its lone request would get. CPU
    generators, as for ``seeded_noise``: diffusers' ``randn_tensor`` draws on the CPU and moves the noise to the
    model's device, so a seed gives the same images on a GPU as on the CPU (a CUDA generator draws another sequence:
    the first GPU check found LCM at 2 steps 10.7 levels of 255 away from the CPU's image in fp16)."""
    if isinstance(seed, ImageSeeds):
        return [torch.Generator().manual_seed(image_seed) for image_seed in seed.seeds]
    return torch.Generator().manual_seed(seed)


def single_image_requests(prompts: list, seeds: list, steps, guidance, layout: bool = True) -> list[Request]:
    """Validated one-image requests for ``generate_batch``; the batch as a whole obeys the batch-size limit."""
    if not isinstance(prompts, (list, tuple)) or not isinstance(seeds, (list, tuple)) or len(prompts) != len(seeds):
        raise InvalidRequest("generate_batch takes a list of prompts and a list of seeds of the same length.")
    if not 1 <= len(prompts) <= MAX_BATCH_SIZE:
        raise InvalidRequest(f"generate_batch takes 1 to {MAX_BATCH_SIZE} prompts, got {len(prompts)}.")
    return [Request(prompt, steps, 1, seed, guidance, layout=layout).validated()
            for prompt, seed in zip(prompts, seeds)]


class BaseGenerator:
    """Subclasses set ``name``, ``default_steps`` and implement ``_generate(request, text, timer) -> tensor``."""

    name = "base"
    default_steps: int | None = None
    default_guidance: float | None = None
    image_size = (64, 64)  # (height, width): what the embedded emoji models draw; the pixel budget reads it
    # Batch x height x width one request may hold; a caller with the memory for more (the GPU benchmark) may raise it.
    max_pixels = MAX_PIXELS_PER_REQUEST
    # Images one request may hold; the GPU benchmark raises it (with max_pixels) for its batch-32 throughput rows.
    max_batch_size = MAX_BATCH_SIZE
    # True for a backend that seeds its sampler's step noise with step_generators(request.seed).
    step_noise_per_image = False
    # Whether SpeedOptions.upscale=2 may end this backend's generations with the 2x upscaler (the embedded 64 px ones).
    can_upscale = True

    def __init__(self, options: SpeedOptions):
        self.options = options.validated()
        self.device, self.dtype = self.options.device, self.options.torch_dtype
        # Schedulers and compiled graphs keep per-run state: one generation at a time per generator.
        self.lock = threading.Lock()
        self.notes: list[str] = []
        self.concepts: ConceptIndex | None = None  # set by backends that draw the embedded emoji world
        self.upscaler = self._load_upscaler()
        self._judge = None  # loaded by the first best_of request

    def _load_upscaler(self) -> ImageUpscaler | None:
        """The 2x upscaler when ``upscale=2`` (prepared with this generator's speed options), else None."""
        if self.options.upscale == 1:
            return None
        if not self.can_upscale:
            raise UnsupportedOption(f"upscale={self.options.upscale}: the upscaler is for the embedded 64x64 models; "
                                    "a model= pipeline draws at its own resolution. Use upscale=1.")
        return ImageUpscaler(self.options, self.notes)

    def _text_encoder(self) -> TextEncoder:
        """MiniLM on the engine ``options.text_engine`` asks for (accel.prepare_text_embedder)."""
        from genimg.accel import prepare_text_embedder

        encoder = TextEncoder(device=self.device, dtype=self.dtype)
        embedder = prepare_text_embedder(encoder.embedder, self.options, self.notes)
        encoder.embedder, encoder.one_prompt_per_call = embedder, embedder is not encoder.embedder
        encoder.pooler = prepare_text_embedder(encoder.pooler, self.options, self.notes, name="text pooler")
        return encoder

    def _concept_index(self) -> ConceptIndex | None:
        """For the embedded emoji models: the index that maps prompts onto known emoji, unless turned off. Its table
        of the names' contexts is used only where it agrees with this generator's text encoder."""
        if self.options.match_concepts is False:
            return None
        index = ConceptIndex.load()
        if index.name_contexts is not None:
            disagreement = index.name_contexts.disagreement(self.text)
            if disagreement:
                self.notes.append(f"The names' contexts table was not used ({disagreement}); names are encoded "
                                  "instead, a second text pass per new prompt.")
                index.name_contexts = None
        return index

    def encode(self, prompts: list[str], batch_size: int, timer: StageTimer) -> TextEmbeddings:
        """One prompt is encoded once and repeated for the batch; several prompts are one each. With a concept index,
        each prompt is replaced by the name of the emoji it matches before it conditions the model: the prompt needs
        only its sentence embedding, and the name's context comes from the index's table where it has one."""
        with timer.stage("text_encode"):
            if self.concepts is None:
                text = self.text.encode(prompts)
            else:
                matches, truncated = self._match(prompts)
                text = self._name_embeddings([match.concept for match in matches])
                text.truncated, text.matches = truncated, matches
        if len(prompts) == batch_size:
            return text
        return TextEmbeddings(text.tokens.expand(batch_size, -1, -1), text.pooled.expand(batch_size, -1),
                              text.truncated * batch_size, text.matches and text.matches * batch_size)

    def _match(self, prompts: list[str]) -> tuple[list[ConceptMatch], list[bool]]:
        """What each prompt is drawn as: the nearest emoji, or where the prompt describes a scene (colours, counts,
        two objects and where they stand: ``genimg.scene_parser``) the scene's canonical caption, its objects
        snapped to emoji names one noun phrase at a time. And whether each prompt was truncated."""
        pooled, truncated = self.text.sentence_embeddings(prompts)
        matches = self.concepts.match(prompts, pooled)
        return [self._scene_match(match) for match in matches], truncated

    def _scene_match(self, match: ConceptMatch) -> ConceptMatch:
        from genimg.scene_parser import parse

        scene = parse(match.prompt, lambda texts: self.concepts.match(texts, self.text.sentence_embeddings(texts)[0]),
                      lambda name: self.concepts.own_colours.get(name, ()))
        if scene is None:  # one plain thing: the whole prompt's nearest emoji
            return match
        similarity = min((similarity for _, similarity in scene.matched), default=match.similarity)
        return dataclasses.replace(match, concept=scene.caption(), caption=scene.caption(), similarity=similarity,
                                   ambiguous_with=(), scene=scene)

    def _name_embeddings(self, names: list[str]) -> TextEmbeddings:
        """The emoji names' contexts: read from the index's table, or encoded where it has none."""
        found = self.concepts.name_contexts.lookup(names) if self.concepts.name_contexts is not None else None
        if found is None:
            return self.text.encode(names)
        tokens, pooled = (part.to(device=self.device, dtype=self.dtype) for part in found)
        return TextEmbeddings(tokens, pooled, [False] * len(names))

    def match_prompt(self, prompt: str) -> tuple[ConceptMatch | None, dict]:
        """What ``prompt`` would be drawn as, without drawing it: the concept index's match (None where matching is
        off) and the text stage's timings. Cached per prompt like every encoding, under the generator's lock (the
        encoder and its cache serve one call at a time). A front end that shows one image per prompt (Live) skips a
        redraw when the emoji, seed and options are those of the image it already shows."""
        prompt = Request(prompt).validated().prompt

        def run():
            with self.lock, torch.inference_mode():
                timer = StageTimer(self.device)
                with timer.stage("text_encode"):
                    if self.concepts is not None:
                        match = self._match([prompt])[0][0]
                    else:
                        self.text.sentence_embeddings([prompt])
                        match = None
                return match, timer.finish()

        return on_torch_thread(run, self.device)

    def with_defaults(self, request: Request) -> Request:
        if request.steps is not None and request.steps > self.max_steps():
            raise InvalidRequest(f"The {self.name} backend takes at most {self.max_steps()} steps, "
                                 f"got {request.steps}.")
        return dataclasses.replace(request, steps=request.steps or self.default_steps,
                                   guidance=self.default_guidance if request.guidance is None else request.guidance)

    def max_steps(self) -> int:
        # LCM schedulers pick their steps from a fixed grid of original_inference_steps timesteps.
        config = getattr(getattr(self, "scheduler", None), "config", None)
        return getattr(config, "original_inference_steps", None) or MAX_STEPS

    def generate(self, prompt: str, steps: int | None = None, batch_size: int = 1, seed: int = 0,
                 guidance: float | None = None, on_step=None, timeout_s: float | None = None,
                 negative_prompt: str | None = None, best_of: int = 1, layout: bool = True) -> Generation:
        """``batch_size`` images of one prompt. ``timeout_s``: the most this request may take, waiting for the
        device included; checked between denoising steps (GenerationTimeout). ``negative_prompt``: what guidance
        steers away from (guided backends; elsewhere ignored, and ``info["negative_prompt"]`` says so).
        ``best_of``: candidates drawn per image, all in one batch; the judge keeps the one nearest to what was drawn
        for (the emoji or the scene's caption), and the timings hold the whole cost (stage "best_of").
        ``layout``: where the prompt is a scene of several objects (or a small one), each object is drawn alone and
        the drawings are arranged as the scene says (``_draw_layout``; ``info["layout"]``); False: the model draws
        the whole scene itself."""
        deadline = Deadline(timeout_s)
        request = self.with_defaults(Request(prompt, steps, batch_size, seed, guidance, negative_prompt, best_of,
                                             layout).validated(self.max_batch_size))
        if request.best_of > 1 and not self.can_upscale:
            raise UnsupportedOption("best_of chooses with the judge of the embedded emoji models; a model= pipeline "
                                    "draws other pictures. Use best_of=1.")
        check_pixel_budget(request.batch_size * request.best_of, self.image_size, self.max_pixels)
        images, text, timings, peak_memory, extra = self._run([request.prompt], request, on_step, deadline)
        info = self.info(request, text.truncated[0], text.match(0))
        info.update(extra)
        return Generation(images, timings, peak_memory, info)

    def generate_batch(self, prompts: list[str], seeds: list[int], steps: int | None = None,
                       guidance: float | None = None, on_step=None, timeout_s: float | None = None,
                       layout: bool = True) -> list[Generation]:
        """One image per (prompt, seed), in one batched pass: what a server does with concurrent requests of the same
        configuration. Image i is generate(prompts[i], seed=seeds[i]).images[0], up to batch-size rounding; where a
        batch could not promise that (see batches_exactly), or a prompt is a scene drawn by ``layout``, the requests
        run one after another instead."""
        deadline = Deadline(timeout_s)
        requests = single_image_requests(prompts, seeds, steps, guidance, layout)
        batch = self.with_defaults(dataclasses.replace(requests[0], batch_size=len(requests),
                                                       seed=ImageSeeds(r.seed for r in requests)))
        check_pixel_budget(batch.batch_size, self.image_size, self.max_pixels)
        if len(requests) > 1 and (not self.batches_exactly(batch.steps)
                                  or (batch.layout and any(self._arranged(r.prompt) for r in requests))):
            alone = [self.generate(r.prompt, r.steps, 1, r.seed, r.guidance, on_step, deadline.remaining_s(),
                                   layout=r.layout) for r in requests]
            return [Generation(result.images, result.timings, result.peak_memory, {**result.info, "batched_with": 1})
                    for result in alone]
        # extra: the layout of a lone request's scene (a batch of several holds none, see above)
        images, text, timings, peak_memory, extra = self._run([r.prompt for r in requests], batch, on_step, deadline)
        return [Generation([image], timings, peak_memory,
                           {**self.info(dataclasses.replace(batch, prompt=r.prompt, seed=r.seed), text.truncated[i],
                                        text.match(i)),
                            **extra, "batched_with": len(requests)})
                for i, (r, image) in enumerate(zip(requests, images))]

    def batches_exactly(self, steps: int | None) -> bool:
        """Whether a batch of separate requests gives each one its lone images. Not where the sampler draws fresh
        noise between steps (LCM beyond one step) from a single generator for the whole batch."""
        from diffusers import LCMScheduler

        shared_step_noise = isinstance(getattr(self, "scheduler", None), LCMScheduler) and (steps or 0) > 1
        return self.step_noise_per_image or not shared_step_noise

    def img2img(self, image, prompt: str, strength: float = 0.5, steps: int | None = None, seed: int = 0,
                guidance: float | None = None, negative_prompt: str | None = None, on_step=None,
                timeout_s: float | None = None) -> Generation:
        """``image`` (a path, bytes or PIL image; see genimg.images.read_image) redrawn towards ``prompt``: encoded
        by the model's autoencoder, noised to ``strength`` (0: keep it, 1: start from noise) and denoised for
        ``steps`` steps (see sampling.strength_schedule), then decoded by this generator's decoder. Backends say
        why they cannot in ``img2img_refusal``; those that can implement ``_load_image_encoder``, ``encode_image``
        and take ``start=(picture, schedule_steps, start_step)`` in ``_generate``."""
        refusal = self.img2img_refusal()
        if refusal:
            raise UnsupportedOption(refusal)
        deadline = Deadline(timeout_s)
        request = self.with_defaults(Request(prompt, steps, 1, seed, guidance, negative_prompt).validated())
        total_steps, start_step = strength_schedule(request.steps, strength, self.max_steps())
        picture = read_image(image, self.image_size[::-1])
        on_torch_thread(self._load_image_encoder, self.device)
        start = (picture, total_steps, start_step)
        images, text, timings, peak_memory, _ = self._run([request.prompt], request, on_step, deadline, start=start)
        info = self.info(request, text.truncated[0], text.match(0))
        info.update(strength=float(strength), effective_strength=round(request.steps / total_steps, 4),
                    schedule_steps=total_steps)
        return Generation(images, timings, peak_memory, info)

    def img2img_refusal(self) -> str | None:
        """Why this generator cannot start from an image (None: it can)."""
        return (f"Image to image needs a latent model to encode the image: the {self.name} backend draws from noise "
                "only. Choose 'latent' or 'latent-lcm'.")

    def negative_prompt_info(self, request: Request) -> dict:
        """What became of the negative prompt; backends with an unconditional pass override this."""
        return {"text": request.negative_prompt, "used": False, "extra_unet_passes": 0,
                "note": f"The {self.name} backend has no guidance pass to steer with; the negative prompt was ignored."}

    def _run(self, prompts: list[str], request: Request, on_step, deadline: Deadline, **inputs):
        """Under the lock: text, the backend's stages, checks, PIL; out of memory becomes a clear error.
        ``inputs`` go to ``_generate`` as they are (image to image's starting image)."""
        def run():
            with self.lock, torch.inference_mode():
                deadline.check("waiting for the device")
                reset_peak_memory(self.device)
                timer = StageTimer(self.device)
                candidates = dataclasses.replace(request, batch_size=request.batch_size * request.best_of)
                text = self.encode(prompts, candidates.batch_size, timer)
                scene = self._layout_scene(text.match(0)) if request.layout and len(prompts) == 1 and not inputs \
                    else None
                extra = {}
                if scene is None:
                    images = self._generate(candidates, text, timer, deadline.wrap(on_step), **inputs)
                else:
                    images, extra["layout"] = self._draw_layout(candidates, scene, timer, deadline.wrap(on_step))
                check_finite(images)
                if request.best_of > 1:
                    with timer.stage("best_of"):
                        images, extra["best_of"] = self._keep_best(images, text.pooled, request.best_of)
                    if "layout" in extra:  # the kept candidates' slots
                        slots = extra["layout"]["slots"]
                        extra["layout"]["slots"] = [slots[i * request.best_of + kept]
                                                    for i, kept in enumerate(extra["best_of"]["kept"])]
                if self.upscaler is not None:
                    with timer.stage("upscale"):
                        images = self.upscaler(images)  # (B, 3, 128, 128)
                with timer.stage("to_pil"):
                    pil_images = to_pil(images)
                return pil_images, text, timer.finish(), peak_memory_bytes(self.device), extra

        # On the server's one torch thread, if it uses one (genimg.threads).
        return call_freeing_memory_on_oom(lambda: on_torch_thread(run, self.device), request.batch_size)

    @staticmethod
    def _layout_scene(match: ConceptMatch | None) -> Scene | None:
        """The scene ``layout`` arranges for this match: several objects or a small one (None: a plain drawing)."""
        scene = None if match is None else match.scene
        return scene if scene is not None and scene.arranged else None

    def _arranged(self, prompt: str) -> bool:
        """Whether ``layout`` would arrange this prompt's scene (an embedded model with concept matching on)."""
        return self.concepts is not None and self._layout_scene(self.match_prompt(prompt)[0]) is not None

    def _draw_layout(self, request: Request, scene: Scene, timer: StageTimer, on_step) -> tuple[torch.Tensor, dict]:
        """Layout-grounded drawing (``genimg.backends.layout``): every object of the scene drawn alone by this model,
        all copies of every image in one batch, then arranged as the scene says. (B, 3, H, W) and what was done, for
        ``info["layout"]``."""
        captions = object_captions(scene)
        rows, per_row = request.batch_size, len(captions)
        with timer.stage("layout_objects"):  # the text of each object and its drawing
            text = self._name_embeddings(captions * rows)
            # One seed for all the copies: a one-request batch's ImageSeeds would give noise for one image only.
            copies_request = dataclasses.replace(request, batch_size=rows * per_row, seed=int(request.seed))
            drawn = self._generate(copies_request, text, StageTimer(self.device), on_step)
        with timer.stage("layout_arrange"):
            images, slots = arrange(drawn, scene, rows, request.seed)
        drawing = (f"{per_row} objects drawn one at a time by the model and arranged" if per_row > 1
                   else "the object drawn alone by the model and placed small")
        return images, {"objects": captions, "slots": [[list(slot) for slot in row] for row in slots],
                        "note": f"Layout: {drawing} as the scene says (layout=False: the model draws the whole scene "
                                "itself)."}

    def _keep_best(self, images: torch.Tensor, pooled: torch.Tensor, best_of: int) -> tuple[torch.Tensor, dict]:
        """(B * best_of, 3, H, W) candidates, image i's at rows i*best_of... -> (B, 3, H, W): each image's candidate
        the judge scores nearest to the sentence it was drawn for (``pooled``, one row per candidate); and what was
        chosen, for ``info["best_of"]``."""
        judge = self._load_judge()
        similarity = judge.score(images.float().cpu(), pooled.float().cpu()).view(-1, best_of)  # (B, best_of)
        kept = similarity.argmax(1)
        chosen = {"candidates": best_of, "kept": kept.tolist(),
                  "judge_scores": [[round(100 * max(0.0, v), 1) for v in row] for row in similarity.tolist()]}
        return images.view(-1, best_of, *images.shape[1:])[torch.arange(len(kept)), kept.to(images.device)], chosen

    def _load_judge(self):
        """The judge that picks among best_of candidates (genimg.models.judge), loaded on first use."""
        if self._judge is None:
            from genimg.assets import ASSETS
            from genimg.models.judge import Judge
            from genimg.threads import LOAD_LOCK

            with LOAD_LOCK:  # from_pretrained is not safe next to another load
                self._judge = Judge.from_pretrained(ASSETS / "judge", torch_dtype=torch.float32).eval()
        return self._judge

    def info(self, request: Request, truncated: bool, match: ConceptMatch | None = None) -> dict:
        info = {"backend": self.name, "steps": request.steps, "guidance": request.guidance,
                "prompt": request.prompt, "seed": int(request.seed), "precision": self.options.precision,
                "device": self.device, "notes": list(self.notes)}
        if self.upscaler is not None:
            info["upscale"] = self.options.upscale
        if match is not None:
            info["drawn_as"] = match.as_info()
            if match.scene is not None and match.scene.unplaced:
                info["notes"].append("Not drawn: " + "; ".join(match.scene.unplaced) + ".")
        if request.negative_prompt:
            info["negative_prompt"] = self.negative_prompt_info(request)
            info["notes"].append(info["negative_prompt"]["note"])
        if truncated:
            info["notes"].append(TRUNCATED_NOTE)
        return info

    def _generate(self, request: Request, text: TextEmbeddings, timer: StageTimer, on_step) -> torch.Tensor:
        raise NotImplementedError
