"""``python -m models build [--models-dir DIR] [--model NAME ...]``: build and verify models.

Prebuilding (e.g. from the Makefile or an image build step) keeps the ~10 s build and the
reference check off service start-up; services still call ``ensure_models``, which is then a
hash check.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from models.registry import SPECS, ModelBuildError, ensure_models
from models.spec import read_manifest

DEFAULT_MODELS_DIR = Path(".kaleem/models")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m models", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build missing or stale models and verify them")
    build.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR)
    build.add_argument(
        "--model",
        dest="models",
        action="append",
        choices=sorted(SPECS),
        help="model to build (repeatable; default: all)",
    )
    build.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    started = time.perf_counter()
    try:
        paths = ensure_models(args.models_dir, args.models or tuple(SPECS))
    except ModelBuildError as exc:
        logging.getLogger("models").error("%s", exc)
        return 1
    summary: dict[str, object] = {"models_dir": str(args.models_dir.resolve()), "models": {}}
    models: dict[str, object] = {}
    for name, path in paths.items():
        manifest = read_manifest(path)
        models[name] = {
            "path": str(path.resolve()),
            "dim": manifest["spec"]["dim"],
            "files": manifest["files"],
            "sources": manifest["sources"],
            "verification": manifest["verification"],
            "built_at": manifest["built_at"],
            "build_seconds": manifest["build_seconds"],
        }
    summary["models"] = models
    summary["elapsed_seconds"] = round(time.perf_counter() - started, 2)
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
