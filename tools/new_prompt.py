"""One image of a prompt the generator has never seen: latent-lcm, 1 step, tiny decoder, batch 1, through
``genimg.load(...)`` (the generators the app's Live tab and one-image API serve), per engine configuration. Every call
is a new prompt: the text stage is one pass of the encoder's sentence pooler over the prompt's own tokens, the concept
match, and the matched emoji name's context read from the concept index's table (genimg.concepts.NameContexts).
What a Live redraw costs while typing. Medians of interleaved rounds in one process, per stage.

    python -m tools.new_prompt [--rounds 40] [--json]     # from the repository root
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys

import genimg
from genimg.options import SpeedOptions
from genimg.registry import GeneratorCache

CONFIGS = {
    "torch fp32 (Live before)": dict(precision="fp32"),
    "torch fp32, text openvino-int8": dict(precision="fp32", text_engine="openvino-int8"),
    "openvino fp32, text openvino-int8 (Live)": dict(precision="fp32", engine="openvino",
                                                     text_engine="openvino-int8"),
    "openvino bf16, text openvino-int8 (Live, native bf16)": dict(precision="bf16", engine="openvino",
                                                                  text_engine="openvino-int8"),
}
WORDS = ("apple banana cherry dog cat rocket heart pizza star moon sun tree house car boat plane train fish bird "
         "frog snow fire smile grin wave flag cloud book clock key lock bell gift cake cup tea").split()


def new_prompts(count: int) -> list[str]:
    """``count`` distinct two-word prompts with a number: none is in any cache."""
    return [f"{WORDS[i % len(WORDS)]} {WORDS[(i * 7 + 3) % len(WORDS)]} {i}" for i in range(count)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    generators = {label: genimg.load("latent-lcm", device="cpu", tiny_decoder=True, **options)
                  for label, options in CONFIGS.items()}
    # The Live configuration without the names' table, side by side: the matched name encoded (a second text pass
    # whenever the name is not in the encoder's cache). A separate cache, so the generator above keeps its table.
    last = list(CONFIGS)[-1]
    untabled = GeneratorCache().get("latent-lcm", SpeedOptions(device="cpu", tiny_decoder=True, **CONFIGS[last]), None)
    untabled.concepts.name_contexts = None
    generators[f"{last.split(' (')[0]}, names encoded (no table)"] = untabled
    for generator in generators.values():  # first calls (conversion, compile) are not timed
        for prompt in ("warm up", "a slice of pizza"):
            generator.generate(prompt, steps=1)
    timings = {label: [] for label in generators}
    for prompt in new_prompts(args.rounds):  # interleaved: each round, every configuration draws the same prompt
        for label, generator in generators.items():
            timings[label].append(generator.generate(prompt, steps=1).timings)
    report = {label: {stage: round(statistics.median(t[stage] for t in runs), 2) for stage in runs[0]}
              for label, runs in timings.items()}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"latent-lcm, 1 step, tiny decoder, a new prompt per call, medians of {args.rounds} interleaved rounds (ms)")
    for label, stages in report.items():
        print(f"{label:55s} total {stages['total']:6.2f}  " +
              "  ".join(f"{stage} {ms:.2f}" for stage, ms in stages.items() if stage != "total"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
