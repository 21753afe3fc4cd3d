"""Command line: ``python -m genimg generate | bench | evaluate | train``."""
from __future__ import annotations

import argparse
import sys

from genimg import cli_bench, cli_evaluate, cli_generate, cli_train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m genimg", description="Fast text-to-image generation.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    cli_generate.add_parser(subparsers)
    cli_bench.add_parser(subparsers)
    cli_evaluate.add_parser(subparsers)
    cli_train.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
