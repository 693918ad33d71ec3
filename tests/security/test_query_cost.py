"""A long message costs a query's worth of embedding, not a passage's.

Queries were embedded up to the passage limit (512 tokens); attention grows with length
squared, so one 4,096-character webchat frame cost ~2.5 s of a core against ~17 ms for a
question (measured on this machine), and 200 hostile sockets turned that into minutes of
queueing for every other customer. Queries now keep their first 128 tokens; passages are
unchanged. Real ONNX models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.encoder import OnnxEncoder
from models.registry import ensure_models
from tests.models.model_dirs import shared_models_dir


@pytest.fixture(scope="module")
def e5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root: Path = shared_models_dir(tmp_path_factory)
    return ensure_models(root, names=("e5",))["e5"]


@pytest.fixture(scope="module")
def e5(e5_dir: Path) -> OnnxEncoder:
    return OnnxEncoder(e5_dir, threads=1)


def test_what_lies_past_a_querys_budget_is_not_embedded(e5: OnnxEncoder) -> None:
    head = "do you have these running shoes in red? " * 30  # ~300 tokens: past 128, inside 512
    a, b = e5.encode([head + "apple " * 100, head + "banana " * 100], "query")
    assert np.allclose(a, b, atol=1e-6)
    # A passage still reads to its own limit: the same two texts differ there.
    pa, pb = e5.encode([head + "apple " * 100, head + "banana " * 100], "passage")
    assert not np.allclose(pa, pb, atol=1e-3)


def test_a_question_is_embedded_as_before(e5: OnnxEncoder, e5_dir: Path) -> None:
    short = ["عندكم جزمة رياضية سوداء؟", "red running shoes under 200"]
    unbounded = OnnxEncoder(e5_dir, threads=1, max_query_tokens=512)
    assert np.allclose(unbounded.encode(short, "query"), e5.encode(short, "query"), atol=1e-6)
