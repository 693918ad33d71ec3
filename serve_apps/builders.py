"""One-argument application builders for Serve config files (KubeRay ``RayService``,
``serve deploy config.yaml``).

Serve calls a config's ``import_path`` with the ``args:`` mapping as its only argument, so the
positional builder that ``actors.runtime`` uses (``build_embedder(models_dir, model)``) cannot
be named there directly; this adapts it without changing it.
"""

# No ``from __future__ import annotations``: Serve inspects the builder's parameter annotation
# at run time and only validates ``args`` into ``EmbedderArgs`` when it is a real class.
from pydantic import BaseModel
from ray import serve

from serve_apps.embedder import build_embedder


class EmbedderArgs(BaseModel):
    models_dir: str
    model: str = "e5"
    threads: int = 1


def embedder_app(args: EmbedderArgs) -> serve.Application:
    return build_embedder(args.models_dir, args.model, args.threads)
