"""``kaleem eval ...``: retrieval quality, weight tuning and the end-to-end store evaluation.

Each command prints one JSON object on stdout and writes the same JSON as a report file, so
a run is both readable in a terminal and diffable in a review.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from engine.config import Settings


def _models_dir(args: argparse.Namespace) -> Path:
    if getattr(args, "models_dir", None):
        return Path(args.models_dir)
    return Settings.from_env().models_dir


def _encoder(args: argparse.Namespace) -> Any:
    from models.encoder import OnnxEncoder
    from models.registry import ensure_models

    path = ensure_models(_models_dir(args), names=("e5",))["e5"]
    return OnnxEncoder(path, threads=max(1, min(4, os.cpu_count() or 1)))


def _emit(result: dict[str, Any], report: Path) -> int:
    from engine.evaluation.retrieval import report as write_report

    write_report(result, report)
    result = {**result, "report": str(report)}
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


def cmd_retrieval(args: argparse.Namespace) -> int:
    from engine.evaluation import retrieval as ev

    if args.kind == "products":
        return _products_retrieval(args)
    if not args.dataset:
        print(json.dumps({"error": "--dataset is required for --kind knowledge"}))
        return 2
    dataset = Path(args.dataset)
    t0 = time.perf_counter()
    split = ev.load_split(dataset)
    encoder = _encoder(args)
    cache = None if args.no_cache else Path(args.cache_dir)
    signals = ev.compute_signals(split, encoder.encode, cache_dir=cache)
    weights = ev.default_weights()
    result: dict[str, Any] = {
        "dataset": str(dataset),
        "corpus": len(split.corpus_ids),
        "hybrid": ev.evaluate(signals, split.qrels, weights),
        "weights": weights,
        "dense_only": ev.evaluate(signals, split.qrels, {"dense": 1.0}),
        "bm25_only": ev.evaluate(signals, split.qrels, {"bm25": 1.0}),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    report = Path(args.report or f".kaleem/eval/retrieval-{dataset.name}.json")
    return _emit(result, report)


def _products_split(args: argparse.Namespace) -> tuple[Path, Any]:
    from engine.evaluation import retrieval as ev

    dataset = Path(args.dataset) if args.dataset else ev.PRODUCT_SET
    return dataset, ev.load_products(dataset, None if args.split == "all" else args.split)


def _products_retrieval(args: argparse.Namespace) -> int:
    """The graded product set: the engine's product ranking vs each signal alone."""
    from engine.domain.ranking import PRODUCT_WEIGHTS
    from engine.evaluation import retrieval as ev

    t0 = time.perf_counter()
    dataset, split = _products_split(args)
    encoder = _encoder(args)
    cache = None if args.no_cache else Path(args.cache_dir)
    signals = ev.compute_product_signals(split, encoder.encode, cache_dir=cache)
    weights = dict(PRODUCT_WEIGHTS)
    result: dict[str, Any] = {
        "dataset": str(dataset),
        "kind": "products",
        "split": args.split,
        "products": len(split.products),
        "hybrid": ev.evaluate_products(signals, split.qrels, weights),
        "weights": weights,
        "dense_only": ev.evaluate_products(signals, split.qrels, {"dense": 1.0}),
        "bm25_only": ev.evaluate_products(signals, split.qrels, {"bm25": 1.0}),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    report = Path(args.report or f".kaleem/eval/retrieval-products-{args.split}.json")
    return _emit(result, report)


def _products_tune(args: argparse.Namespace) -> int:
    from engine.domain.ranking import PRODUCT_WEIGHTS
    from engine.evaluation import retrieval as ev

    if args.split != "train" and not args.allow_non_train:
        print(json.dumps({"error": "tune on --split train only (or pass --allow-non-train)"}))
        return 2
    dataset, split = _products_split(args)
    encoder = _encoder(args)
    cache = None if args.no_cache else Path(args.cache_dir)
    signals = ev.compute_product_signals(split, encoder.encode, cache_dir=cache)
    weights, score = ev.tune_products(
        signals, split.qrels, ["dense", "bm25", "cov"], step=args.step
    )
    current = dict(PRODUCT_WEIGHTS)
    result = {
        "dataset": str(dataset),
        "kind": "products",
        "split": args.split,
        "weights": weights,
        "ndcg@10": score,
        "current": {"weights": current, **ev.evaluate_products(signals, split.qrels, current)},
        "hint": "copy weights into engine.domain.ranking.PRODUCT_WEIGHTS with the train score",
    }
    return _emit(result, Path(args.report or f".kaleem/eval/tune-products-{args.split}.json"))


def cmd_tune(args: argparse.Namespace) -> int:
    from engine.evaluation import retrieval as ev

    if args.kind == "products":
        return _products_tune(args)
    if not args.dataset:
        print(json.dumps({"error": "--dataset is required for --kind knowledge"}))
        return 2
    dataset = Path(args.dataset)
    if dataset.name != "train" and not args.allow_non_train:
        print(json.dumps({"error": "tune on train/ only (or pass --allow-non-train)"}))
        return 2
    split = ev.load_split(dataset)
    encoder = _encoder(args)
    cache = None if args.no_cache else Path(args.cache_dir)
    signals = ev.compute_signals(split, encoder.encode, cache_dir=cache)
    weights, score = ev.tune(signals, split.qrels, ["dense", "bm25", "cov"], step=args.step)
    result = {
        "dataset": str(dataset),
        "weights": weights,
        "ndcg@10": score,
        "current": {
            "weights": ev.default_weights(),
            **ev.evaluate(signals, split.qrels, ev.default_weights()),
        },
        "hint": "copy weights into engine.domain.ranking.KNOWLEDGE_WEIGHTS with the train score",
    }
    return _emit(result, Path(args.report or f".kaleem/eval/tune-{dataset.name}.json"))


def cmd_store(args: argparse.Namespace) -> int:
    from engine.evaluation.store import run_store_eval

    result = asyncio.run(run_store_eval(args))
    report = Path(args.report or ".kaleem/eval/store.json")
    code = _emit(result, report)
    return code if result.get("passed", True) or not args.strict else 1


def register(sub: Any) -> None:
    """Adds ``eval`` with its subcommands to the ``kaleem`` parser (``engine/cli``)."""
    ev = sub.add_parser("eval", help="measure answer quality").add_subparsers(
        dest="eval_command", required=True
    )
    for name, fn, help_ in (
        ("retrieval", cmd_retrieval, "nDCG@10 / Recall@1,10 / MRR on a BEIR split"),
        ("tune", cmd_tune, "grid-search fusion weights on a train split"),
    ):
        p = ev.add_parser(name, help=help_)
        p.add_argument(
            "--kind",
            choices=("knowledge", "products"),
            default="knowledge",
            help="knowledge: a BEIR split (ARCD); products: the graded product set",
        )
        p.add_argument(
            "--dataset",
            default=None,
            help="knowledge: BEIR split dir (corpus/queries/qrels), required; products: the "
            "set's dir (default engine/evaluation/data/products)",
        )
        p.add_argument(
            "--split",
            choices=("train", "test", "all"),
            default="train" if name == "tune" else "test",
            help="products only: which queries",
        )
        p.add_argument("--models-dir", default=None)
        p.add_argument("--cache-dir", default=".kaleem/eval-cache")
        p.add_argument("--no-cache", action="store_true")
        p.add_argument("--report", default=None)
        if name == "tune":
            p.add_argument("--step", type=float, default=0.05)
            p.add_argument("--allow-non-train", action="store_true")
        p.set_defaults(func=fn)
    st = ev.add_parser("store", help="questions through the playground pipeline")
    st.add_argument("--catalog", default="tests/eval/data/catalog.jsonl")
    st.add_argument("--knowledge", default="tests/eval/data/knowledge.jsonl")
    st.add_argument("--questions", default="tests/eval/data/questions.jsonl")
    st.add_argument("--url", default=None, help="a running engine (else started in-process)")
    st.add_argument(
        "--local", action="store_true", help="TurnService in-process without Ray (fast)"
    )
    st.add_argument("--admin-token", default=None)
    st.add_argument("--models-dir", default=None)
    st.add_argument("--limit", type=int, default=0)
    st.add_argument("--report", default=None)
    st.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    st.set_defaults(func=cmd_store)
