"""Command line: ``python -m genimg generate | bench | evaluate | train | serve``, one module per subcommand."""
from __future__ import annotations

import argparse

from genimg.cli import bench, evaluate, generate, serve, train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m genimg", description="Fast text-to-image generation.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for subcommand in (generate, bench, evaluate, train, serve):
        subcommand.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)
