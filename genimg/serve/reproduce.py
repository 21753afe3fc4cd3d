"""Copy as code: the Python call, CLI command and gradio_client call that reproduce a result, seed and options
included, as one Markdown block a front end shows next to the result (collapsed)."""
from __future__ import annotations

import shlex

from genimg.options import guidance_cutoff_or_none, upscale_factor

APP_URL = "http://127.0.0.1:7860/"  # where `python app.py` serves by default
# CLI flags for genimg.load options and generate arguments (python -m genimg generate); booleans are switches.
CLI_FLAGS = {"backend": "--backend", "model": "--model", "precision": "--precision", "scheduler": "--scheduler",
             "tiny_decoder": "--tiny-decoder", "compile": "--compile", "steps": "--steps",
             "batch_size": "--batch-size", "seed": "--seed", "guidance": "--guidance",
             "negative_prompt": "--negative-prompt", "engine": "--engine",
             "text_engine": "--text-engine", "quantize": "--quantize",
             "pruned": "--pruned", "guidance_cutoff": "--guidance-cutoff", "upscale": "--upscale",
             "best_of": "--best-of"}


def _arguments(values: dict) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in values.items())


def python_call(load: dict, method: str, call: dict) -> str:
    """``load``: genimg.load's arguments (backend first); ``call``: the generator method's, prompt first."""
    load = dict(load)
    backend = load.pop("backend")
    prompt = call.get("prompt")
    rest = {name: value for name, value in call.items() if name != "prompt"}
    head = f"{prompt!r}, " if method == "generate" else ""
    if method == "img2img":
        head = f"{rest.pop('image')!r}, {prompt!r}, "
    return "\n".join([
        "import genimg",
        "",
        f"generator = genimg.load({backend!r}{', ' if load else ''}{_arguments(load)})",
        f"result = generator.{method}({head}{_arguments(rest)})",
        "result.images[0].save(\"out.png\"); print(result.timings)",
    ])


def cli_command(load: dict, call: dict) -> str:
    """The same text-to-image generation from a shell (``match_concepts=False`` is ``--no-match-concepts``)."""
    parts = ["python", "-m", "genimg", "generate", call["prompt"]]
    for name, value in {**load, **call}.items():
        if name == "match_concepts" and value is False:
            parts.append("--no-match-concepts")
        elif name == "layout" and value is False:
            parts.append("--no-layout")
        elif name in CLI_FLAGS and value not in (None, False, ""):
            parts += [CLI_FLAGS[name]] if value is True else [CLI_FLAGS[name], str(value)]
    return " ".join(shlex.quote(part) for part in parts + ["--out", "outputs/"])


def client_call(api_name: str, arguments: dict, files: tuple[str, ...] = ()) -> str:
    """The app's API called from Python; ``files``: arguments that are paths to upload (handle_file)."""
    values = ", ".join(f"{name}=handle_file({value!r})" if name in files else f"{name}={value!r}"
                       for name, value in arguments.items())
    return "\n".join([
        "from gradio_client import Client" + (", handle_file" if files else ""),
        "",
        f"client = Client({APP_URL!r})  # this app's address",
        f"result = client.predict({values}, api_name={api_name!r})",
    ])


def reproduce_markdown(python: str, cli: str | None, client: str) -> str:
    """The three, in a collapsed block (HTML details; Markdown code fences inside, each with a copy button)."""
    shell = f"```bash\n{cli}\n```" if cli else "_No CLI command does this yet; use the Python call._"
    return "\n".join(["", "<details><summary>Copy as code (Python, CLI, gradio_client)</summary>", "",
                      f"```python\n{python}\n```", "", shell, "", f"```python\n{client}\n```", "", "</details>"])


def reproduce_generation(load: dict, call: dict, api_name: str, api_arguments: dict) -> str:
    """A text-to-image result (Generate, Live, one Compare column) as Python, CLI and gradio_client."""
    return reproduce_markdown(python_call(load, "generate", call), cli_command(load, call),
                              client_call(api_name, api_arguments))


def load_and_call(arguments: dict) -> tuple[dict, dict]:
    """The app's text-to-image arguments (the /generate API's names) split into genimg.load's and generate's, with
    what is at its default left out: "default" scheduler, no model, 0 steps (the backend's own)."""
    backend = arguments["backend"]
    load = {"backend": backend, "precision": arguments.get("precision", "fp32")}
    if (arguments.get("model") or "").strip():
        load["model"] = arguments["model"].strip()
    if arguments.get("scheduler") not in (None, "default"):
        load["scheduler"] = arguments["scheduler"]
    if arguments.get("compile"):
        load["compile"] = True
    if arguments.get("tiny_decoder") and backend.startswith("latent"):
        load["tiny_decoder"] = True
    if arguments.get("match_concepts") is False:
        load["match_concepts"] = False
    if arguments.get("engine") not in (None, "", "torch"):
        load["engine"] = arguments["engine"]
    if arguments.get("quantize") not in (None, "", "none"):
        load["quantize"] = arguments["quantize"]
    if arguments.get("pruned"):
        load["pruned"] = True
    if guidance_cutoff_or_none(arguments.get("guidance_cutoff")) is not None:
        load["guidance_cutoff"] = arguments["guidance_cutoff"]
    if upscale_factor(arguments.get("upscale")) != 1:
        load["upscale"] = upscale_factor(arguments["upscale"])
    call = {"prompt": arguments["prompt"], "steps": arguments.get("steps") or None,
            "batch_size": arguments.get("batch_size", 1), "seed": arguments.get("seed", 0),
            "negative_prompt": (arguments.get("negative_prompt") or "").strip() or None,
            "best_of": arguments.get("best_of") if (arguments.get("best_of") or 1) > 1 else None,
            "layout": False if arguments.get("layout") is False else None}
    return load, {name: value for name, value in call.items() if value is not None}


def reproduce_generate_api(arguments: dict) -> str:
    """A Generate tab result: its /generate arguments as Python, CLI and gradio_client."""
    load, call = load_and_call(arguments)
    return reproduce_generation(load, call, "/generate", arguments)


def reproduce_compare(prompt: str, seed: int, configs: list[dict], repeats: int) -> str:
    """A Compare result: each configuration's Python call and CLI command, and the /compare call."""
    python, shell, arguments = ["import genimg", ""], [], {"prompt": prompt, "seed": seed}
    # python_call's lines after its import: load, generate, save; the save line is dropped below.
    for index, config in enumerate(configs, start=1):
        load, call = load_and_call({**config, "prompt": prompt, "seed": seed})
        python.append(python_call(load, "generate", call).split("\n", 2)[2].replace("result =", f"result_{index} ="))
        shell.append(cli_command(load, call))
        arguments.update({f"{name}_{index}": value for name, value in config.items()})
    for index in range(len(configs) + 1, 5):
        arguments[f"backend_{index}"] = "off"
    arguments["repeats"] = repeats
    python.append(f"# Compare ran each configuration once as a warm-up (timed apart), then {repeats} times timed.")
    python = "\n".join(python).replace('result.images[0].save("out.png"); print(result.timings)\n', "")
    return reproduce_markdown(python, "\n".join(shell), client_call("/compare", arguments))
