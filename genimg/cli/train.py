"""``python -m genimg train``: argument parsing for the training scripts."""
from __future__ import annotations

import argparse
import json
import sys

from genimg.errors import GenimgError
from genimg.train import DEFAULT_TEACHERS, LATENT_STAGES, TRAINERS, TrainConfig, run


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train an embedded model (writes assets/models/...)")
    parser.add_argument("model", choices=[*TRAINERS, "latent"], help="'latent' runs autoencoder, unet, tiny-decoder")
    parser.add_argument("--out", help="output folder (default: the model's folder under assets/models)")
    parser.add_argument("--dataset", default="emoji", choices=["emoji", "procedural"])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seconds", type=float, help="wall-clock budget per stage; stops early when spent")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--teacher", help="distill, prune-*: the model to learn from (default: the shipped one)")
    parser.add_argument("--init-from", help="fine-tuning: unet starts from this pipeline folder's weights, gan and vae "
                                            "(and judge) from this model folder's")
    parser.add_argument("--balance", default="uniform", choices=["uniform", "sqrt-family"],
                        help="how often each emoji is drawn: 'sqrt-family' draws skin-tone variants less (1/sqrt of "
                             "their family's size) and every distinct emoji more")
    parser.add_argument("--scenes", type=float, default=0.0,
                        help="share of the draws from the compositional scenes (colours, counts, two objects and "
                             "where they stand; genimg.train.scenes), e.g. 0.5; 0: the emoji alone")
    parser.add_argument("--pairs", type=int, help="distill: how many teacher samples to learn from (default 16384; "
                                                 "each costs the teacher's 16 guided steps)")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    stages = LATENT_STAGES if args.model == "latent" else (args.model,)
    for stage in stages:
        _, _, out, batch_size, learning_rate = TRAINERS[stage]
        config = TrainConfig(out_dir=args.out or out, dataset=args.dataset, steps=args.steps, seconds=args.seconds,
                             batch_size=args.batch_size or batch_size, learning_rate=args.lr or learning_rate,
                             seed=args.seed, resume=args.resume,
                             teacher=args.teacher or DEFAULT_TEACHERS.get(stage),
                             init_from=args.init_from, balance=args.balance, scenes=args.scenes,
                             distill_pairs=args.pairs)
        try:
            summary = run(stage, config)
        except GenimgError as error:
            print(f"genimg train {stage}: {error}", file=sys.stderr)
            return 2
        print(json.dumps({"stage": stage, "steps": summary["steps"], "seconds": summary["seconds"],
                          "last": summary["last"]}))
    return 0
