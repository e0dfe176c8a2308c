"""Reading GGUF checkpoints (llama.cpp's format) for :mod:`numbaq.models.llama`.

:func:`read` opens a ``.gguf`` file with the ``gguf`` package's ``GGUFReader`` (imported
only here: ``pip install gguf``) and returns its metadata as plain Python values and its
tensors as the raw block bytes, memory-mapped, not copied; a damaged file is a
``ValueError`` naming the file and the field or tensor where it breaks. From there:

- :func:`dequantize` turns a tensor (F32, F16, BF16, Q8_0, Q4_0, Q4_1) into float32, bit
  for bit what ``gguf.quants.dequantize`` gives (twins: ``numbaq.reference.dequantize_*``);
- :func:`q8_0_to_int8`, :func:`q4_0_to_int8` and :func:`q4_1_to_int8` read the stored
  codes and block scales as int8 weights with one scale per group of 32 input features,
  for :meth:`numbaq.QuantizedWeight.from_int8`, exactly, without quantizing again;
- :data:`ROLES` and :func:`role` name each tensor as transformers does;
  :func:`unpermute_rows` undoes llama.cpp's reordering of the rows of ``attn_q`` and
  ``attn_k``;
- :mod:`numbaq.models.gguf_meta` reads the metadata: ``config`` (the Llama
  hyper-parameters under transformers' names, checked against every tensor's shape) and
  ``tokenizer`` (a ``tokenizers.Tokenizer`` from the file's own vocabulary).

A GGUF file: the magic ``b"GGUF"``, a version, the tensor and key-value counts, the
key-value metadata, one record per tensor (name, dimensions fastest-first, type, offset),
then, aligned, the tensors' bytes. A quantized row is a run of blocks of 32 values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .gguf_meta import ROLES, config, role, tokenizer, unpermute_rows

__all__ = [
    "ROLES",
    "TYPES",
    "GGUFFile",
    "GGUFTensor",
    "config",
    "dequantize",
    "dequantize_blocks",
    "q4_0_to_int8",
    "q4_1_to_int8",
    "q4_weight",
    "q8_0_to_int8",
    "read",
    "role",
    "tokenizer",
    "unpermute_rows",
]

INSTALL = "reading a GGUF file needs the gguf package: pip install gguf"

TYPES = {
    "F32": (1, 4),
    "F16": (1, 2),
    "BF16": (1, 2),
    "Q8_0": (32, 34),
    "Q4_0": (32, 18),
    "Q4_1": (32, 20),
}
"""Tensor types read here: ``type -> (values per block, bytes per block)``."""

_F32 = np.float32


def _gguf():
    """The ``gguf`` package, imported on first use (numbaq itself does not need it)."""
    try:
        import gguf
    except ImportError as exc:
        raise ImportError(INSTALL) from exc
    return gguf


# ------------------------------------------------------------------ reading the file
@dataclass(frozen=True, repr=False)
class GGUFTensor:
    """One tensor of a GGUF file: its name, type, shape and stored bytes.

    Attributes
    ----------
    name : str
        As the file names it, e.g. ``"blk.0.attn_q.weight"``.
    type : str
        One of :data:`TYPES`, e.g. ``"Q8_0"``.
    shape : tuple of int
        numpy order, ``(rows, cols)`` for a matrix: the file's dimensions reversed.
    data : uint8 ndarray
        ``shape[:-1]`` followed by the bytes of a row: the stored bytes, row by row
        (for a quantized type, ``cols // 32`` blocks a row); a view into the file's memory
        map when it comes from :func:`read`.

    Examples
    --------
    >>> raw = np.frombuffer(np.float32([1, 2, 3]).tobytes(), np.uint8)
    >>> t = GGUFTensor("norm.weight", "F32", (3,), raw)
    >>> t, dequantize(t).tolist()
    (GGUFTensor('norm.weight', F32, (3,)), [1.0, 2.0, 3.0])
    """

    name: str
    type: str
    shape: tuple
    data: np.ndarray

    def __post_init__(self):
        if self.type not in TYPES:
            raise ValueError(
                f"{self.name}: tensor type {self.type!r} is not supported; supported: {list(TYPES)}"
            )
        block, nbytes = TYPES[self.type]
        shape = tuple(int(s) for s in self.shape)
        if not shape or shape[-1] % block:
            raise ValueError(
                f"{self.name}: a {self.type} row holds whole blocks of {block} values; "
                f"shape {shape} does not"
            )
        row = shape[-1] // block * nbytes
        data = self.data
        if not (isinstance(data, np.ndarray) and data.dtype == np.uint8):
            raise TypeError(f"{self.name}: data must be a uint8 ndarray of the stored bytes")
        if data.size != int(np.prod(shape[:-1], dtype=np.int64)) * row:
            raise ValueError(
                f"{self.name}: {data.size} bytes do not fit shape {shape} of type {self.type} "
                f"({row} bytes a row)"
            )
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "data", data.reshape(*shape[:-1], row))

    @property
    def nbytes(self) -> int:
        """Bytes the tensor takes in the file."""
        return int(self.data.size)

    def __repr__(self) -> str:
        return f"GGUFTensor({self.name!r}, {self.type}, {self.shape})"


@dataclass(frozen=True, repr=False)
class GGUFFile:
    """What :func:`read` returns: a GGUF file's metadata and tensors.

    Attributes
    ----------
    path : pathlib.Path
        The file.
    metadata : dict of str to str, int, float, bool or list
        The key-value pairs, as plain Python values (arrays as lists).
    tensors : dict of str to GGUFTensor
        In file order.
    version : int
        The GGUF format version (2 or 3).

    Examples
    --------
    >>> f = GGUFFile(Path("m.gguf"), {"general.architecture": "llama"}, {}, 3)
    >>> f
    GGUFFile('m.gguf', 1 metadata keys, 0 tensors)
    """

    path: Path
    metadata: dict
    tensors: dict
    version: int

    def __repr__(self) -> str:
        return (
            f"GGUFFile({self.path.name!r}, {len(self.metadata)} metadata keys, "
            f"{len(self.tensors)} tensors)"
        )


def read(path) -> GGUFFile:
    """Read a GGUF file: metadata as Python values, tensors as their stored bytes.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.gguf`` file.

    Returns
    -------
    GGUFFile
        ``metadata`` (key -> value) and ``tensors`` (name -> :class:`GGUFTensor`), the
        tensors' bytes memory-mapped (read-only), not copied.

    Raises
    ------
    ImportError
        If the ``gguf`` package is not installed (``pip install gguf``).
    FileNotFoundError
        If there is no such file.
    ValueError
        Naming the file and the field or tensor at fault, if the file is not a GGUF file,
        is cut short, holds a tensor of a type not in :data:`TYPES` (or unknown), or a
        tensor whose bytes do not fit its shape (a row that is not whole blocks, bytes
        that run into the next tensor or past the end of the file).

    Notes
    -----
    A tensor's bytes run from ``data start + offset`` for ``rows * (cols // block) *
    bytes per block`` bytes; ``data start`` is the end of the header rounded up to the
    file's alignment (``general.alignment``, 32 by default).

    Examples
    --------
    >>> import os, tempfile
    >>> gguf = __import__("pytest").importorskip("gguf")
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.gguf")
    >>> w = gguf.GGUFWriter(path, "llama")
    >>> w.add_tensor("output_norm.weight", np.ones(4, np.float32))
    >>> w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file()
    >>> w.close()
    >>> f = read(path)
    >>> f.metadata["general.architecture"], f.tensors["output_norm.weight"]
    ('llama', GGUFTensor('output_norm.weight', F32, (4,)))
    """
    gguf = _gguf()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    size = path.stat().st_size
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise ValueError(
            f"{path.name}: not a GGUF file (it starts with {magic!r}, not b'GGUF'; {size} bytes)"
        )
    try:
        reader = gguf.GGUFReader(path, "r")
    except (ValueError, IndexError, KeyError, TypeError, OverflowError, UnicodeError) as exc:
        raw = np.memmap(path, np.uint8, mode="r")
        problem = _locate_damage(raw, gguf) or f"unreadable GGUF file ({exc})"
        raise ValueError(f"{path.name}: {problem}") from exc
    if getattr(reader, "byte_order", "I") != "I":
        raise ValueError(f"{path.name}: a byte-swapped (big-endian) GGUF file is not supported")
    metadata = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):  # the reader's own records of the header
            continue
        try:
            metadata[key] = _value(field, gguf.GGUFValueType)
        except (UnicodeDecodeError, ValueError, IndexError) as exc:
            raise ValueError(f"{path.name}: metadata field {key!r} is unreadable ({exc})") from exc
    records = [
        (t.name, int(t.tensor_type), [int(d) for d in t.shape], int(t.data_offset))
        for t in reader.tensors
    ]
    problem = _check_tensors(records, size, gguf)
    if problem:
        raise ValueError(f"{path.name}: {problem}")
    tensors = {}
    for name, type_id, dims, start in records:
        type_name = gguf.GGMLQuantizationType(type_id).name
        nbytes = _nbytes(type_name, dims)
        tensors[name] = GGUFTensor(
            name, type_name, tuple(reversed(dims)), reader.data[start : start + nbytes]
        )
    version = int(reader.fields["GGUF.version"].parts[0][0])
    return GGUFFile(path, metadata, tensors, version)


def _value(field, kinds):
    """A ``ReaderField``'s value as plain Python (an array of arrays comes flattened)."""
    types = field.types
    if not types:
        return None
    if types[0] == kinds.ARRAY:
        if not field.data:
            return []
        if types[-1] == kinds.STRING:
            return [bytes(field.parts[i]).decode("utf-8") for i in field.data]
        return np.concatenate([field.parts[i] for i in field.data]).tolist()
    if types[0] == kinds.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8")
    return field.parts[field.data[0]].tolist()[0]


def _nbytes(type_name: str, dims) -> int:
    """Bytes of a tensor of ``type_name`` with GGUF dimensions ``dims`` (fastest first)."""
    block, nbytes = TYPES[type_name]
    return int(np.prod(dims, dtype=np.int64)) // block * nbytes


def _check_tensors(records, size: int, gguf) -> str | None:
    """The first problem with the tensor records ``(name, type id, dims, start)``: a type
    not read here, a row that is not whole blocks, bytes running into the next tensor or
    past the end of a file of ``size`` bytes; or None."""
    spans = []
    for name, type_id, dims, start in records:
        try:
            type_name = gguf.GGMLQuantizationType(type_id).name
        except ValueError:
            return f"tensor {name}: unknown tensor type {type_id} (a newer or damaged file?)"
        if type_name not in TYPES:
            return (
                f"tensor {name}: tensor type {type_name} is not supported; "
                f"supported: {list(TYPES)} (re-quantize the file, e.g. to Q8_0)"
            )
        block = TYPES[type_name][0]
        shape = tuple(reversed(dims))
        if not dims or dims[0] % block:
            return (
                f"tensor {name}: shape {shape} of type {type_name} does not fit its bytes "
                f"(a row of {dims[0] if dims else 0} values is not whole blocks of {block})"
            )
        spans.append((start, start + _nbytes(type_name, dims), name, shape, type_name))
    spans.sort()
    for (lo, hi, name, shape, type_name), after in zip(spans, [*spans[1:], None]):
        if hi > size:
            return (
                f"tensor {name}: shape {shape} of type {type_name} needs bytes {lo}..{hi}, "
                f"past the end of the file ({size} bytes): the file is cut short, or the "
                "shape is wrong"
            )
        if after is not None and hi > after[0]:
            return (
                f"tensor {name}: shape {shape} of type {type_name} needs {hi - lo} bytes, "
                f"but tensor {after[2]} starts {after[0] - lo} bytes after it: the shape "
                "does not fit the bytes"
            )
    return None


_SCALAR_BYTES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9


class _Cut(Exception):
    """The header ends before ``what``."""


def _locate_damage(raw: np.ndarray, gguf) -> str | None:
    """Walk a GGUF header that ``GGUFReader`` could not read, and say where it breaks:
    the metadata field or tensor record it is cut in, or the tensor at fault."""
    pos = 0

    def take(n, what):
        nonlocal pos
        if n < 0 or pos + n > raw.size:
            raise _Cut(what)
        pos += n
        return raw[pos - n : pos]

    def u32(what):
        return int(take(4, what).view("<u4")[0])

    def u64(what):
        return int(take(8, what).view("<u8")[0])

    def string(what):
        return bytes(take(u64(what), what)).decode("utf-8", "replace")

    def skip_value(kind, what):
        if kind == _STRING:
            take(u64(what), what)
        elif kind == _ARRAY:
            sub, count = u32(what), u64(what)
            if sub in _SCALAR_BYTES:
                take(count * _SCALAR_BYTES[sub], what)
            else:
                for _ in range(count):
                    skip_value(sub, what)
        elif kind in _SCALAR_BYTES:
            take(_SCALAR_BYTES[kind], what)
        else:
            raise ValueError(f"metadata field {what}: unknown value type {kind}")

    alignment, key = 32, None
    try:
        take(4, "the magic")
        version = u32("the version")
        if version not in (2, 3):
            return f"GGUF version {version} is not supported (2 or 3)"
        n_tensors, n_kv = u64("the tensor count"), u64("the metadata count")
        for i in range(n_kv):
            key = f"number {i}"
            key = repr(string(f"metadata field {key}"))
            kind = u32(f"metadata field {key}")
            start = pos
            skip_value(kind, f"metadata field {key}")
            if key == "'general.alignment'" and kind == 4:
                alignment = int(raw[start : start + 4].view("<u4")[0])
        records = []
        for i in range(n_tensors):
            what = f"the record of tensor number {i}"
            name = string(what)
            what = f"the record of tensor {name}"
            dims = [u64(what) for _ in range(u32(what))]
            records.append((name, u32(what), dims, u64(what)))
    except _Cut as cut:
        return f"the file is cut short in {cut} ({raw.size} bytes)"
    except ValueError as exc:
        return str(exc)
    data_start = -(-pos // max(alignment, 1)) * max(alignment, 1)
    records = [(n, t, d, data_start + off) for n, t, d, off in records]
    return _check_tensors(records, raw.size, gguf)


# ------------------------------------------------------------------ dequantizing
def _half(raw: np.ndarray, at: int) -> np.ndarray:
    """The fp16 at byte ``at`` of each block (``raw`` (n, block bytes)), as (n, 1, 1)
    float32."""
    return np.ascontiguousarray(raw[:, at : at + 2]).view("<f2").astype(_F32)[:, :, None]


def _codes4(qs: np.ndarray) -> np.ndarray:
    """``qs`` (n, 16) bytes -> (n, 2, 16) float32 codes in [0, 15]: the low nibbles
    (elements 0..15), then the high nibbles (16..31)."""
    out = np.empty((len(qs), 2, 16), _F32)
    np.bitwise_and(qs, 0x0F, out=out[:, 0], casting="unsafe")
    np.right_shift(qs, 4, out=out[:, 1], casting="unsafe")
    return out


def _f32(raw):
    return np.ascontiguousarray(raw).view("<f4").astype(_F32)


def _f16(raw):
    return np.ascontiguousarray(raw).view("<f2").astype(_F32)


def _bf16(raw):
    return (np.ascontiguousarray(raw).view("<u2").astype(np.uint32) << 16).view(_F32)


def _q8_0(raw):
    b = raw.reshape(-1, 34)
    out = b[:, 2:].view(np.int8).astype(_F32)
    out *= _half(b, 0)[:, :, 0]
    return out


def _q4_0(raw):
    b = raw.reshape(-1, 18)
    out = _codes4(b[:, 2:])
    out -= _F32(8)  # exact: small integers
    out *= _half(b, 0)
    return out


def _q4_1(raw):
    b = raw.reshape(-1, 20)
    out = _codes4(b[:, 4:])
    out *= _half(b, 0)
    out += _half(b, 2)
    return out


_DEQUANTIZE = {"F32": _f32, "F16": _f16, "BF16": _bf16, "Q8_0": _q8_0, "Q4_0": _q4_0}
_DEQUANTIZE["Q4_1"] = _q4_1


def dequantize_blocks(data, type: str) -> np.ndarray:
    """Stored rows of a GGUF tensor to float32.

    Parameters
    ----------
    data : (..., bytes per row) uint8 array_like
        Rows as stored: for a quantized type, whole blocks (34 bytes a block for Q8_0,
        18 for Q4_0, 20 for Q4_1); for F32, F16 and BF16 the little-endian values.
    type : {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1"}
        The tensor type.

    Returns
    -------
    (..., values per row) float32 ndarray
        A new array.

    Raises
    ------
    ValueError
        If ``type`` is not one of :data:`TYPES`, or a row is not whole blocks.

    Notes
    -----
    Per block of 32 values (``d``, ``m`` fp16; ``q`` the codes; 4-bit codes: low nibbles
    are elements 0..15, high nibbles 16..31), in float32 as ``gguf.quants.dequantize``::

        Q8_0: x = d * q              q int8
        Q4_0: x = d * (q - 8)        q in [0, 15]
        Q4_1: x = d * q + m          q in [0, 15], the product rounded, then the sum

    BF16 is the high half of a float32. The twins: ``numbaq.reference.dequantize_q8_0``,
    ``dequantize_q4_0``, ``dequantize_q4_1``.

    Examples
    --------
    >>> block = np.frombuffer(np.float16(0.25).tobytes() + bytes(range(32)), np.uint8)
    >>> dequantize_blocks(block, "Q8_0")[:4].tolist()
    [0.0, 0.25, 0.5, 0.75]
    """
    if type not in TYPES:
        raise ValueError(f"type must be one of {list(TYPES)}, got {type!r}")
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim < 1:
        raise TypeError(f"data must be a uint8 array of stored rows, got {data.dtype}")
    block, nbytes = TYPES[type]
    if data.shape[-1] % nbytes:
        raise ValueError(
            f"a {type} row is whole blocks of {nbytes} bytes; rows of {data.shape[-1]} "
            "bytes are not"
        )
    values = data.shape[-1] // nbytes * block
    return _DEQUANTIZE[type](data).reshape(*data.shape[:-1], values)


def dequantize(tensor: GGUFTensor, rows=None) -> np.ndarray:
    """A GGUF tensor (or some of its rows) as float32, in numpy order.

    Parameters
    ----------
    tensor : GGUFTensor
        From :func:`read`.
    rows : slice or array_like of int, optional
        Only these rows (of a matrix), e.g. the embeddings of some token ids; the other
        rows are not decoded.

    Returns
    -------
    tensor.shape float32 ndarray
        Or ``(len(rows), cols)`` with ``rows``. Bit for bit ``gguf.quants.dequantize``.

    Notes
    -----
    See :func:`dequantize_blocks` for each type's formula.

    Examples
    --------
    >>> raw = np.frombuffer(np.float16([1, 2, 3, 4]).tobytes(), np.uint8)
    >>> t = GGUFTensor("w", "F16", (2, 2), raw)
    >>> dequantize(t).tolist(), dequantize(t, rows=[1]).tolist()
    ([[1.0, 2.0], [3.0, 4.0]], [[3.0, 4.0]])
    """
    if not isinstance(tensor, GGUFTensor):
        raise TypeError(f"tensor must be a GGUFTensor (from read), got {type(tensor).__name__}")
    data = tensor.data
    if rows is not None:
        if data.ndim != 2:
            raise ValueError(f"{tensor.name}: rows needs a matrix, got shape {tensor.shape}")
        data = data[rows] if isinstance(rows, slice) else data[np.asarray(rows, np.intp)]
    return dequantize_blocks(data, tensor.type)


# ------------------------------------------------------------------ int8 views
def _blocks_of(tensor, kind: str, block_bytes: int) -> np.ndarray:
    """The tensor's blocks as (rows, blocks, block bytes), after checking its type."""
    if not isinstance(tensor, GGUFTensor):
        raise TypeError(f"tensor must be a GGUFTensor (from read), got {type(tensor).__name__}")
    if tensor.type != kind:
        raise ValueError(f"{tensor.name}: needs a {kind} tensor, got {tensor.type}")
    if len(tensor.shape) != 2:
        raise ValueError(f"{tensor.name}: needs a matrix, got shape {tensor.shape}")
    rows, cols = tensor.shape
    return tensor.data.reshape(rows, cols // 32, block_bytes)


def _scales(b: np.ndarray, at: int) -> np.ndarray:
    """The fp16 at byte ``at`` of every block of ``b`` (rows, blocks, bytes), as
    (rows, blocks) float32."""
    return np.ascontiguousarray(b[:, :, at : at + 2]).view("<f2")[..., 0].astype(_F32)


def _nibbles(b: np.ndarray, start: int) -> np.ndarray:
    """The 4-bit codes of ``b`` (rows, blocks, bytes) from byte ``start``, as
    (rows, blocks, 32) int8 in [0, 15]: low nibbles are elements 0..15, high 16..31."""
    qs = b[:, :, start : start + 16]
    return np.concatenate([qs & 0x0F, qs >> 4], axis=2).view(np.int8)


def _positive(q: np.ndarray, scale: np.ndarray, name: str, lowest: int | None = None):
    """Make every block scale positive without changing ``q * scale``: a negative one
    and its codes change sign; a zero one (the block's values all zero) becomes 1 with
    codes 0. ``q`` (rows, blocks, 32) int8 and ``scale`` (rows, blocks) change in place."""
    flip = scale < 0
    if flip.any():
        if lowest is not None and (q[flip] == lowest).any():
            raise ValueError(
                f"{name}: a block with a negative scale holds the code {lowest}, whose "
                "sign cannot change in int8; pass positive_scales=False"
            )
        q[flip] = -q[flip]
        scale[flip] = -scale[flip]
    zero = scale == 0
    if zero.any():
        q[zero] = 0
        scale[zero] = 1
    bad = ~np.isfinite(scale)
    if bad.any():
        raise ValueError(f"{name}: {int(bad.sum())} block scales are not finite")


def q8_0_to_int8(tensor: GGUFTensor, positive_scales: bool = True):
    """A Q8_0 matrix as int8 codes and one float32 scale per block of 32, exactly.

    Parameters
    ----------
    tensor : GGUFTensor
        A Q8_0 matrix ``(rows, cols)``.
    positive_scales : bool
        Make every scale positive, as :meth:`numbaq.QuantizedWeight.from_int8` needs
        (Notes); otherwise the file's scales as stored.

    Returns
    -------
    q : (rows, cols) int8 ndarray
        The stored codes.
    scale : (rows, cols // 32) float32 ndarray
        The block scales ``d``.

    Raises
    ------
    ValueError
        If the tensor is not a Q8_0 matrix, or a scale is not finite.

    Notes
    -----
    ``q[r, c] * scale[r, c // 32]`` in float32 is the dequantized value bit for bit (the
    product of an int8 and an fp16 value is exact in float32). llama.cpp writes
    ``d = absmax / 127 >= 0``; a block whose ``d`` is 0 (all its values 0) gets codes 0
    and scale 1 with ``positive_scales``, and a negative ``d`` (from another writer)
    changes sign with its codes.

    Examples
    --------
    >>> block = np.float16(0.5).tobytes() + np.arange(-16, 16, dtype=np.int8).tobytes()
    >>> t = GGUFTensor("w", "Q8_0", (1, 32), np.frombuffer(block, np.uint8))
    >>> q, scale = q8_0_to_int8(t)
    >>> q[0, :3].tolist(), scale.tolist()
    ([-16, -15, -14], [[0.5]])
    """
    b = _blocks_of(tensor, "Q8_0", 34)
    rows, blocks = b.shape[:2]
    q = b[:, :, 2:].view(np.int8).copy()
    scale = _scales(b, 0)
    if positive_scales:
        _positive(q, scale, tensor.name, lowest=-128)
    return q.reshape(rows, blocks * 32), scale


def q4_0_to_int8(tensor: GGUFTensor, positive_scales: bool = True):
    """A Q4_0 matrix as int4 values in int8 and one float32 scale per block of 32,
    exactly.

    Parameters
    ----------
    tensor : GGUFTensor
        A Q4_0 matrix ``(rows, cols)``.
    positive_scales : bool
        Make every scale positive, as :meth:`numbaq.QuantizedWeight.from_int8` needs
        (Notes); otherwise the file's scales as stored, and ``q`` in [-8, 7].

    Returns
    -------
    q : (rows, cols) int8 ndarray
        ``nibble - 8``: in [-8, 7], or, in a block whose stored ``d`` is negative and
        ``positive_scales`` is set, ``8 - nibble`` in [-7, 8].
    scale : (rows, cols // 32) float32 ndarray
        The block scales: ``d``, or ``|d|`` with ``positive_scales``.

    Raises
    ------
    ValueError
        If the tensor is not a Q4_0 matrix, or a scale is not finite.

    Notes
    -----
    ``x = d * (nibble - 8)`` per block, and ``q[r, c] * scale[r, c // 32]`` in float32 is
    that value bit for bit. llama.cpp's quantizer sets ``d = v / -8`` where ``v`` is the
    block's value of largest magnitude, so ``d`` is negative in about half the blocks;
    ``positive_scales`` flips those blocks' signs (codes and scale), and gives a block
    whose ``d`` is 0 codes 0 and scale 1.

    Examples
    --------
    >>> block = np.float16(-2).tobytes() + bytes([0x9F] * 16)  # nibbles 15 and 9
    >>> t = GGUFTensor("w", "Q4_0", (1, 32), np.frombuffer(block, np.uint8))
    >>> q, scale = q4_0_to_int8(t)
    >>> q[0, [0, 16]].tolist(), scale.tolist()  # -2 * 7 = 2 * -7 and -2 * 1 = 2 * -1
    ([-7, -1], [[2.0]])
    """
    b = _blocks_of(tensor, "Q4_0", 18)
    rows, blocks = b.shape[:2]
    q = _nibbles(b, 2) - np.int8(8)
    scale = _scales(b, 0)
    if positive_scales:
        _positive(q, scale, tensor.name)
    return q.reshape(rows, blocks * 32), scale


def q4_1_to_int8(tensor: GGUFTensor, positive_scales: bool = True, signed: bool = True):
    """A Q4_1 matrix as int4 values in int8, one float32 scale and one offset per block
    of 32, exactly.

    Parameters
    ----------
    tensor : GGUFTensor
        A Q4_1 matrix ``(rows, cols)``.
    positive_scales : bool
        Make every scale positive, as :meth:`numbaq.QuantizedWeight.from_int8` needs:
        a block whose ``d`` is 0 gets codes 0 and scale 1 (its values are the offset); a
        negative ``d`` (llama.cpp writes none) changes sign with its codes.
    signed : bool
        Codes ``nibble - 8`` in [-8, 7] with offset ``m + 8 d`` (default), or the stored
        nibbles in [0, 15] with offset ``m``.

    Returns
    -------
    q : (rows, cols) int8 ndarray
        ``nibble - 8`` (``signed``) or ``nibble``.
    scale : (rows, cols // 32) float32 ndarray
        The block scales ``d``.
    offset : (rows, cols // 32) float32 ndarray
        ``m + 8 d`` (``signed``) or ``m``: the value is ``q * scale + offset``.

    Raises
    ------
    ValueError
        If the tensor is not a Q4_1 matrix, a scale is not finite, or, with ``signed``,
        ``m + 8 d`` is not exact in float32 for some block (then pass ``signed=False``).

    Notes
    -----
    The file stores ``x = d * nibble + m``, and ``d * (nibble - 8) + (m + 8 d)`` is the
    same real number. In float32 both products are exact (an fp16 value times a 4-bit
    code), so where the offset ``m + 8 d`` is exact too, both sums round the same real
    number once: ``q * scale + offset`` equals the dequantized value bit for bit. The
    offset is exact unless ``|m|`` and ``8 |d|`` are some 2**13 apart; in all 3,317,760
    Q4_1 blocks of SmolLM2-135M-Instruct it is, and a block where it is not is an
    error, not a silent rounding.

    Examples
    --------
    >>> block = np.array([0.5, -4], np.float16).tobytes() + bytes([0x30] * 16)
    >>> t = GGUFTensor("w", "Q4_1", (1, 32), np.frombuffer(block, np.uint8))
    >>> q, scale, offset = q4_1_to_int8(t)  # nibbles 0 and 3: -4 and -2.5
    >>> q[0, [0, 16]].tolist(), scale.tolist(), offset.tolist()
    ([-8, -5], [[0.5]], [[0.0]])
    """
    b = _blocks_of(tensor, "Q4_1", 20)
    rows, blocks = b.shape[:2]
    q = _nibbles(b, 4)
    scale, m = _scales(b, 0), _scales(b, 2)
    if signed:
        q -= np.int8(8)
        offset = m + _F32(8) * scale
        inexact = offset.astype(np.float64) != m.astype(np.float64) + 8 * scale.astype(np.float64)
        inexact &= np.isfinite(offset)
        if inexact.any():
            raise ValueError(
                f"{tensor.name}: m + 8 d is not exact in float32 in {int(inexact.sum())} "
                "blocks; pass signed=False for the stored nibbles and m"
            )
    else:
        offset = m
    if positive_scales:
        _positive(q, scale, tensor.name)
    return q.reshape(rows, blocks * 32), scale, offset


# ------------------------------------------------------------------ the Llama config


def q4_weight(tensor: GGUFTensor):
    """A Q4_1 or Q4_0 matrix as llama.cpp's Q4_1 parts, exactly as stored.

    Parameters
    ----------
    tensor : GGUFTensor
        A Q4_1 or Q4_0 matrix ``(rows, cols)``.

    Returns
    -------
    q : (rows, cols) uint8 ndarray
        The stored nibbles, in [0, 15].
    d, m : (rows, cols // 32) float32 ndarrays
        Scale and offset per block: the value is ``d * q + m``. Q4_0 stores
        ``d * (q - 8)``: ``m = -8 d``, exact (a power of two times a half-precision value).

    Raises
    ------
    ValueError
        If the tensor is neither, or a scale is not finite.

    Examples
    --------
    >>> block = np.float16(-2).tobytes() + bytes([0x9F] * 16)  # nibbles 15 and 9
    >>> q, d, m = q4_weight(GGUFTensor("w", "Q4_0", (1, 32), np.frombuffer(block, np.uint8)))
    >>> q[0, [0, 16]].tolist(), d.tolist(), m.tolist()  # -2 * 15 + 16 = -14 = -2 * (15 - 8)
    ([15, 9], [[-2.0]], [[16.0]])
    """
    if tensor.type == "Q4_1":
        q, d, m = q4_1_to_int8(tensor, positive_scales=False, signed=False)
        return q.astype(np.uint8), d, m
    if tensor.type == "Q4_0":
        q, d = q4_0_to_int8(tensor, positive_scales=False)
        return (q + np.int8(8)).astype(np.uint8), d, _F32(-8) * d
    raise ValueError(f"{tensor.name}: a Q4_1 or Q4_0 matrix is needed, not {tensor.type}")
