"""One-argument application builders for Serve config files (KubeRay ``RayService``,
``serve deploy config.yaml``).

Serve calls a config's ``import_path`` with the ``args:`` mapping as its only argument, so the
positional builders that ``actors.runtime`` uses (``build_embedder(models_dir, model)``,
``build_reranker()``) cannot be named there directly; these adapt them without changing them.
"""

# No ``from __future__ import annotations``: Serve inspects the builder's parameter annotation
# at run time and only validates ``args`` into ``EmbedderArgs`` when it is a real class.
from typing import Any

from pydantic import BaseModel
from ray import serve

from serve_apps.embedder import build_embedder
from serve_apps.reranker import build_reranker


class EmbedderArgs(BaseModel):
    models_dir: str
    model: str = "e5"
    threads: int = 1


def embedder_app(args: EmbedderArgs) -> serve.Application:
    return build_embedder(args.models_dir, args.model, args.threads)


def reranker_app(args: dict[str, Any]) -> Any:
    if args:
        raise ValueError(f"the reranker app takes no arguments, got {sorted(args)}")
    return build_reranker()
