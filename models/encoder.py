"""Run a built model: ``tokenizers`` for text → ids, onnxruntime for ids → unit vectors.

This is the only part of ``models`` that runs on the request path, so it imports nothing from
the build side (no onnx, no source packages) and does no work beyond tokenise, batch, run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Tokenizer

from models.spec import MODEL_FILE, TOKENIZER_FILE, ModelSpec, read_manifest

logger = logging.getLogger(__name__)

Kind = Literal["query", "passage"]
Embeddings = npt.NDArray[np.float32]


class OnnxEncoder:
    """A loaded sentence encoder; safe to call from several threads at once.

    ``threads`` is onnxruntime's intra-op pool: keep it at the CPUs the caller was actually given
    (Ray does not pin CPUs, so oversubscribing just makes replicas fight). ``max_batch_tokens``
    bounds one run's padded size, because attention memory grows with batch × length².
    """

    def __init__(
        self,
        model_dir: Path,
        threads: int = 1,
        *,
        batch_size: int = 32,
        max_batch_tokens: int = 4096,
        max_query_tokens: int = 128,
        spec: ModelSpec | None = None,
    ) -> None:
        if threads < 1 or batch_size < 1 or max_batch_tokens < 1:
            raise ValueError("threads, batch_size and max_batch_tokens must be positive")
        self._spec = spec or ModelSpec.from_dict(read_manifest(model_dir)["spec"])
        self._batch_size = batch_size
        self._max_batch_tokens = max(max_batch_tokens, self._spec.max_tokens)

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle onnxruntime workers spin by default; on a small shared box that burns the CPU
        # other replicas and Ray itself need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(model_dir / MODEL_FILE), options, providers=["CPUExecutionProvider"]
        )

        self._tokenizer = Tokenizer.from_file(str(model_dir / TOKENIZER_FILE))
        padding = self._tokenizer.padding
        self._pad_id = int(padding["pad_id"]) if padding else 0
        # We pad per length-sorted batch ourselves; the tokenizer's own padding would pad every
        # text in a call to the longest one.
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=self._spec.max_tokens)
        # A query is a customer's question: the attention cost grows with length squared, so
        # a 4,096-character message embedded at the passage limit (512 tokens) took ~2.5 s of
        # a core against ~17 ms for a question (measured), an amplification any client could
        # buy with one webchat frame. Queries keep their first ``max_query_tokens``.
        self._query_tokens = max(1, min(max_query_tokens, self._spec.max_tokens))
        self._query_tokenizer = Tokenizer.from_file(str(model_dir / TOKENIZER_FILE))
        self._query_tokenizer.no_padding()
        self._query_tokenizer.enable_truncation(max_length=self._query_tokens)
        logger.info("loaded %s from %s (%d threads)", self._spec.name, model_dir, threads)

    @property
    def dim(self) -> int:
        return self._spec.dim

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    def _prefix(self, kind: Kind) -> str:
        if kind == "query":
            return self._spec.query_prefix
        if kind == "passage":
            return self._spec.passage_prefix
        raise ValueError(f"kind must be 'query' or 'passage', not {kind!r}")

    def encode(self, texts: Sequence[str], kind: Kind) -> Embeddings:
        """(n, dim) float32 unit rows in input order; texts past ``max_tokens`` are truncated."""
        prefix = self._prefix(kind)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        if kind == "query":
            # Characters past what the truncated tokens can cover are not even tokenized.
            cap = self._query_tokens * 16
            encodings = self._query_tokenizer.encode_batch([prefix + t[:cap] for t in texts])
        else:
            encodings = self._tokenizer.encode_batch([prefix + t for t in texts])
        ids = [e.ids for e in encodings]
        lengths = np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(ids))
        # Sorting by length keeps each batch's padding (wasted compute) small.
        order = np.argsort(lengths, kind="stable")
        for batch in self._batches(order, lengths):
            width = int(lengths[batch[-1]])
            input_ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                input_ids[row, : lengths[i]] = ids[i]
                mask[row, : lengths[i]] = 1
            (vectors,) = self._session.run(
                ["sentence_embedding"], {"input_ids": input_ids, "attention_mask": mask}
            )
            out[batch] = vectors
        return out

    def _batches(
        self, order: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]
    ) -> list[npt.NDArray[np.int64]]:
        """Split length-sorted indices into batches within both the row and the token budget."""
        batches: list[npt.NDArray[np.int64]] = []
        start = 0
        for pos in range(1, len(order) + 1):
            size = pos - start
            if pos == len(order):
                batches.append(order[start:pos])
                break
            # Ascending order: the next text is the longest of the would-be batch.
            if (
                size >= self._batch_size
                or (size + 1) * lengths[order[pos]] > self._max_batch_tokens
            ):
                batches.append(order[start:pos])
                start = pos
        return batches
