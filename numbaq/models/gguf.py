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
- :func:`config` gives the Llama hyper-parameters under transformers' names, checked
  against every tensor's shape; :data:`ROLES` and :func:`role` name each tensor as
  transformers does; :func:`unpermute_rows` undoes llama.cpp's reordering of the rows of
  ``attn_q`` and ``attn_k``;
- :func:`tokenizer` builds a ``tokenizers.Tokenizer`` from the file's own vocabulary.

A GGUF file: the magic ``b"GGUF"``, a version, the tensor and key-value counts, the
key-value metadata, one record per tensor (name, dimensions fastest-first, type, offset),
then, aligned, the tensors' bytes. A quantized row is a run of blocks of 32 values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
    "q8_0_to_int8",
    "read",
    "role",
    "tokenizer",
    "unpermute_rows",
]

INSTALL = "reading a GGUF file needs the gguf package: pip install gguf"
INSTALL_TOKENIZERS = "a GGUF tokenizer needs the tokenizers package: pip install tokenizers"

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
    data : (*shape[:-1], bytes per row) uint8 ndarray
        The stored bytes, row by row (for a quantized type, ``cols // 32`` blocks a row);
        a view into the file's memory map when it comes from :func:`read`.

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
ROLES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
    "blk.{i}.attn_norm.weight": "model.layers.{i}.input_layernorm.weight",
    "blk.{i}.attn_q.weight": "model.layers.{i}.self_attn.q_proj.weight",
    "blk.{i}.attn_k.weight": "model.layers.{i}.self_attn.k_proj.weight",
    "blk.{i}.attn_v.weight": "model.layers.{i}.self_attn.v_proj.weight",
    "blk.{i}.attn_output.weight": "model.layers.{i}.self_attn.o_proj.weight",
    "blk.{i}.ffn_norm.weight": "model.layers.{i}.post_attention_layernorm.weight",
    "blk.{i}.ffn_gate.weight": "model.layers.{i}.mlp.gate_proj.weight",
    "blk.{i}.ffn_up.weight": "model.layers.{i}.mlp.up_proj.weight",
    "blk.{i}.ffn_down.weight": "model.layers.{i}.mlp.down_proj.weight",
}
"""GGUF tensor names of a Llama model and transformers' names for them (``{i}``: the
layer). ``attn_q`` and ``attn_k`` are stored with their rows reordered
(:func:`unpermute_rows`)."""

_ROLE_BY_SUFFIX = {k.split("{i}.", 1)[1]: v for k, v in ROLES.items() if "{i}" in k}


def role(name: str) -> str:
    """transformers' name for a GGUF tensor of a Llama model.

    Parameters
    ----------
    name : str
        A GGUF tensor name, e.g. ``"blk.3.ffn_up.weight"``.

    Returns
    -------
    str
        E.g. ``"model.layers.3.mlp.up_proj.weight"`` (:data:`ROLES`).

    Raises
    ------
    ValueError
        If ``name`` is not a tensor of a Llama model.

    Examples
    --------
    >>> role("blk.3.ffn_up.weight"), role("output_norm.weight")
    ('model.layers.3.mlp.up_proj.weight', 'model.norm.weight')
    """
    if name in ROLES:
        return ROLES[name]
    parts = name.split(".", 2)
    if len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit():
        if parts[2] in _ROLE_BY_SUFFIX:
            return _ROLE_BY_SUFFIX[parts[2]].format(i=int(parts[1]))
    raise ValueError(
        f"tensor {name}: not a tensor of a Llama model (numbaq.models.gguf.ROLES lists "
        "them; biases and llama3's rope_freqs are not supported)"
    )


def unpermute_rows(w, n_head: int) -> np.ndarray:
    """Undo llama.cpp's reordering of the rows of ``attn_q`` / ``attn_k``.

    Parameters
    ----------
    w : (rows, ...) array_like
        A tensor's rows as stored, any dtype: float weights, int8 codes, block scales or
        the raw block bytes (a row permutation moves whole rows, so it is exact on
        quantized rows).
    n_head : int
        The heads these rows belong to: ``num_attention_heads`` for ``attn_q``,
        ``num_key_value_heads`` for ``attn_k``.

    Returns
    -------
    (rows, ...) ndarray
        The rows in transformers' order (a new array).

    Raises
    ------
    ValueError
        If ``rows`` is not a multiple of ``2 * n_head``.

    Notes
    -----
    transformers' rotary embedding pairs element ``j`` of a head with ``j + d / 2``; ggml's
    pairs ``2 j`` with ``2 j + 1``. So llama.cpp's converter writes head ``h``'s rows
    interleaved, ``w.reshape(n_head, 2, d / 2, ...).swapaxes(1, 2)``, and this is its
    inverse, ``w.reshape(n_head, d / 2, 2, ...).swapaxes(1, 2)`` (as transformers reads
    GGUF files).

    Examples
    --------
    >>> unpermute_rows(np.array([0, 4, 1, 5, 2, 6, 3, 7]), n_head=1).tolist()
    [0, 1, 2, 3, 4, 5, 6, 7]
    """
    w = np.asarray(w)
    if isinstance(n_head, bool) or not isinstance(n_head, (int, np.integer)) or n_head < 1:
        raise ValueError(f"n_head must be a positive int, got {n_head!r}")
    if w.ndim < 1 or w.shape[0] % (2 * n_head):
        raise ValueError(
            f"unpermute_rows: {w.shape[0] if w.ndim else 0} rows are not n_head = {n_head} "
            "heads of an even size; pass num_attention_heads for attn_q, "
            "num_key_value_heads for attn_k"
        )
    half = w.shape[0] // n_head // 2
    return w.reshape(n_head, half, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _parts(file_or_metadata):
    """``(metadata, tensors or None, "name: ")`` of a GGUFFile or a metadata dict."""
    if isinstance(file_or_metadata, GGUFFile):
        return (
            file_or_metadata.metadata,
            file_or_metadata.tensors,
            f"{file_or_metadata.path.name}: ",
        )
    if isinstance(file_or_metadata, dict):
        return file_or_metadata, None, ""
    raise TypeError(
        "pass the GGUFFile from read(path) or its metadata dict, got "
        f"{type(file_or_metadata).__name__}"
    )


def config(file) -> dict:
    """The Llama hyper-parameters of a GGUF file, under transformers' names, checked
    against every tensor.

    Parameters
    ----------
    file : GGUFFile or dict
        From :func:`read` (then every tensor's shape is checked), or its metadata.

    Returns
    -------
    dict
        ``model_type`` ("llama"), ``hidden_size``, ``intermediate_size``,
        ``num_hidden_layers``, ``num_attention_heads``, ``num_key_value_heads``,
        ``head_dim``, ``rms_norm_eps``, ``rope_theta``, ``rope_scaling`` (None or the
        file's ``{"rope_type", "factor", ...}``), ``vocab_size``,
        ``max_position_embeddings``, ``tie_word_embeddings`` (no ``output.weight``; with
        a metadata dict, False unless stated), ``hidden_act`` ("silu"),
        ``bos_token_id``, ``eos_token_id``, ``pad_token_id``, ``add_bos_token``,
        ``chat_template`` (the ids and template None where the file has none).

    Raises
    ------
    ValueError
        Naming the file and the field: ``general.architecture`` other than "llama", a
        missing or bad metadata field, a partial rotary embedding, or a tensor missing,
        unknown (:func:`role`) or of a shape the config does not fit.

    Notes
    -----
    The metadata keys, ``llama.`` + ``embedding_length``, ``feed_forward_length``,
    ``block_count``, ``attention.head_count``, ``attention.head_count_kv`` (default: the
    head count), ``attention.layer_norm_rms_epsilon``, ``rope.freq_base`` (default
    10000), ``context_length``, ``vocab_size`` (default: the vocabulary's size), and
    ``attention.key_length`` (default ``hidden_size / num_attention_heads``). Shapes
    (numpy order): ``token_embd`` and ``output`` ``(vocab_size, hidden_size)``;
    ``attn_q`` ``(heads * head_dim, hidden_size)``, ``attn_k``, ``attn_v``
    ``(kv_heads * head_dim, hidden_size)``, ``attn_output``
    ``(hidden_size, heads * head_dim)``; ``ffn_gate``, ``ffn_up``
    ``(intermediate_size, hidden_size)``, ``ffn_down`` ``(hidden_size,
    intermediate_size)``; the norms ``(hidden_size,)``.

    Examples
    --------
    >>> meta = {"general.architecture": "llama", "llama.embedding_length": 64,
    ...         "llama.feed_forward_length": 96, "llama.block_count": 2,
    ...         "llama.attention.head_count": 4, "llama.attention.head_count_kv": 2,
    ...         "llama.attention.layer_norm_rms_epsilon": 1e-5, "llama.context_length": 128,
    ...         "llama.vocab_size": 100}
    >>> cfg = config(meta)
    >>> cfg["head_dim"], cfg["num_key_value_heads"], cfg["rope_theta"]
    (16, 2, 10000.0)
    """
    meta, tensors, where = _parts(file)
    arch = meta.get("general.architecture")
    if arch != "llama":
        raise ValueError(
            f"{where}general.architecture = {arch!r} is not supported; numbaq reads "
            "'llama' (Llama 1-3, SmolLM, TinyLlama, Mistral ...)"
        )

    def field(key, kind, default=None):
        full = f"llama.{key}"
        v = meta.get(full, default)
        if v is None:
            raise ValueError(f"{where}metadata field {full} is missing")
        ok = (
            isinstance(v, int) and not isinstance(v, bool) and v >= 1
            if kind is int
            else isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
        )
        if not ok:
            kind_name = "positive int" if kind is int else "positive number"
            raise ValueError(f"{where}metadata field {full} must be a {kind_name}, got {v!r}")
        return kind(v)

    tokens = meta.get("tokenizer.ggml.tokens")
    vocab_default = len(tokens) if isinstance(tokens, list) and tokens else None
    if vocab_default is None and tensors and "token_embd.weight" in tensors:
        vocab_default = tensors["token_embd.weight"].shape[0]
    hidden = field("embedding_length", int)
    heads = field("attention.head_count", int)
    cfg = {
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": field("feed_forward_length", int),
        "num_hidden_layers": field("block_count", int),
        "num_attention_heads": heads,
        "num_key_value_heads": field("attention.head_count_kv", int, heads),
        "head_dim": None,
        "rms_norm_eps": field("attention.layer_norm_rms_epsilon", float),
        "rope_theta": field("rope.freq_base", float, 10000.0),
        "rope_scaling": None,
        "vocab_size": field("vocab_size", int, vocab_default),
        "max_position_embeddings": field("context_length", int),
        "tie_word_embeddings": tensors is not None and "output.weight" not in tensors,
        "hidden_act": "silu",
        "bos_token_id": meta.get("tokenizer.ggml.bos_token_id"),
        "eos_token_id": meta.get("tokenizer.ggml.eos_token_id"),
        "pad_token_id": meta.get("tokenizer.ggml.padding_token_id"),
        "add_bos_token": bool(meta.get("tokenizer.ggml.add_bos_token", False)),
        "chat_template": meta.get("tokenizer.chat_template"),
    }
    if "llama.attention.key_length" in meta:
        head_dim = field("attention.key_length", int)
    elif hidden % heads:
        raise ValueError(
            f"{where}llama.embedding_length ({hidden}) is not a multiple of "
            f"llama.attention.head_count ({heads}), and there is no llama.attention.key_length"
        )
    else:
        head_dim = hidden // heads
    cfg["head_dim"] = head_dim
    if heads % cfg["num_key_value_heads"]:
        raise ValueError(
            f"{where}llama.attention.head_count ({heads}) is not a multiple of "
            f"llama.attention.head_count_kv ({cfg['num_key_value_heads']})"
        )
    if meta.get("llama.attention.value_length", head_dim) != head_dim:
        raise ValueError(
            f"{where}llama.attention.value_length ({meta['llama.attention.value_length']}) "
            f"differs from the key length ({head_dim}); not supported"
        )
    rope_dims = meta.get("llama.rope.dimension_count", head_dim)
    if rope_dims != head_dim:
        raise ValueError(
            f"{where}llama.rope.dimension_count = {rope_dims}, but a head has {head_dim} "
            "dimensions: a partial rotary embedding is not supported"
        )
    scaling = meta.get("llama.rope.scaling.type")
    if scaling not in (None, "none"):
        cfg["rope_scaling"] = {
            "rope_type": scaling,
            **{
                k.rsplit(".", 1)[1]: v
                for k, v in meta.items()
                if k.startswith("llama.rope.scaling.") and k != "llama.rope.scaling.type"
            },
        }
    if tensors is not None:
        _check_shapes(cfg, tensors, where)
    return cfg


def _check_shapes(cfg: dict, tensors: dict, where: str) -> None:
    """Every tensor present, known and of the shape ``cfg`` says (ValueError naming the
    tensor and the field)."""
    h, v, it = "llama.embedding_length", "llama.vocab_size", "llama.feed_forward_length"
    q, kv = "llama.attention.head_count * head_dim", "llama.attention.head_count_kv * head_dim"
    sizes = {
        h: cfg["hidden_size"],
        v: cfg["vocab_size"],
        it: cfg["intermediate_size"],
        q: cfg["num_attention_heads"] * cfg["head_dim"],
        kv: cfg["num_key_value_heads"] * cfg["head_dim"],
    }
    expect = {"token_embd.weight": (v, h), "output_norm.weight": (h,)}
    if "output.weight" in tensors:
        expect["output.weight"] = (v, h)
    per_layer = {
        "attn_norm.weight": (h,),
        "attn_q.weight": (q, h),
        "attn_k.weight": (kv, h),
        "attn_v.weight": (kv, h),
        "attn_output.weight": (h, q),
        "ffn_norm.weight": (h,),
        "ffn_gate.weight": (it, h),
        "ffn_up.weight": (it, h),
        "ffn_down.weight": (h, it),
    }
    layers = cfg["num_hidden_layers"]
    for i in range(layers):
        for suffix, dims in per_layer.items():
            expect[f"blk.{i}.{suffix}"] = dims
    for name in tensors:
        try:
            role(name)
        except ValueError as exc:
            raise ValueError(f"{where}{exc}") from None
        if name.startswith("blk.") and int(name.split(".")[1]) >= layers:
            raise ValueError(
                f"{where}tensor {name}: llama.block_count = {layers}, but the file also "
                f"has layer {name.split('.')[1]}"
            )
    for name, dims in expect.items():
        if name not in tensors:
            raise ValueError(f"{where}tensor {name} is missing (llama.block_count = {layers})")
        got = tensors[name].shape
        want = tuple(sizes[d] for d in dims)
        if got != want:
            bad = next(
                (f"{d} = {sizes[d]}" for d, g in zip(dims, got) if sizes[d] != g),
                f"{len(dims)} dimensions",
            )
            raise ValueError(
                f"{where}tensor {name} has shape {got}, but the metadata says {want} "
                f"({bad} does not fit)"
            )


# ------------------------------------------------------------------ the tokenizer
_GPT2_SPLIT = ("gpt2", "default", "mpt", "olmo", "jais")
"""``tokenizer.ggml.pre`` values llama.cpp splits with the GPT-2 regex alone."""
_DIGITS_SPLIT = ("smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b")
"""... and with each digit apart first (``\\p{N}``), then the GPT-2 regex."""


def _bytes_to_unicode() -> dict:
    """GPT-2's byte -> printable character map of byte-level BPE vocabularies."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    keep += range(ord("®"), ord("ÿ") + 1)
    spelled, extra = {}, 0
    for b in range(256):
        if b in keep:
            spelled[b] = chr(b)
        else:
            spelled[b] = chr(256 + extra)
            extra += 1
    return spelled


def tokenizer(file):
    """The tokenizer a GGUF file describes, as a ``tokenizers.Tokenizer``.

    Parameters
    ----------
    file : GGUFFile or dict
        From :func:`read`, or its metadata: ``tokenizer.ggml.model`` ("gpt2"),
        ``tokenizer.ggml.tokens``, ``tokenizer.ggml.merges``, and, optional,
        ``tokenizer.ggml.token_type``, ``tokenizer.ggml.pre``,
        ``tokenizer.ggml.bos_token_id``, ``tokenizer.ggml.add_bos_token``.

    Returns
    -------
    tokenizers.Tokenizer
        Byte-level BPE over the file's vocabulary and merges; its control tokens (e.g.
        ``<|im_start|>``) added as special tokens and its user-defined ones as added
        tokens, so each encodes to its one id; a byte-level decoder; BOS prepended only
        where ``tokenizer.ggml.add_bos_token`` says so.

    Raises
    ------
    ImportError
        If ``tokenizers`` is not installed.
    ValueError
        Naming the field: ``tokenizer.ggml.model`` other than "gpt2" (byte-level BPE),
        ``tokenizer.ggml.pre`` not supported, or the tokens or merges missing or bad.

    Notes
    -----
    As transformers builds a GGUF tokenizer (``integrations/gguf``), but with llama.cpp's
    split for ``tokenizer.ggml.pre``: digits one by one before the GPT-2 regex for
    "smollm" (and the StarCoder family), as SmolLM2's own ``tokenizer.json`` does;
    transformers uses the GPT-2 regex alone there, which gives the same ids on SmolLM2's
    vocabulary, which has no merges of digits. Tokens spelled outside the byte alphabet
    are respelled byte by byte; control tokens outside it are not added (a llama.cpp
    mislabel, as transformers does).

    Examples
    --------
    >>> _ = __import__("pytest").importorskip("tokenizers")
    >>> from numbaq.models.gguf import _bytes_to_unicode
    >>> alphabet = [_bytes_to_unicode()[b] for b in range(256)]
    >>> meta = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "gpt2",
    ...         "tokenizer.ggml.tokens": ["<s>", *alphabet, "hi", "Ġhi"],
    ...         "tokenizer.ggml.token_type": [3] + [1] * 258,
    ...         "tokenizer.ggml.merges": ["h i", "Ġ hi"]}
    >>> tok = tokenizer(meta)
    >>> tok.encode("<s>hi hi").ids, tok.decode(tok.encode("hi hi").ids)
    ([0, 257, 258], 'hi hi')
    """
    meta, _, where = _parts(file)
    model = meta.get("tokenizer.ggml.model")
    if model != "gpt2":
        raise ValueError(
            f"{where}tokenizer.ggml.model = {model!r} is not supported; numbaq builds "
            "'gpt2' (byte-level BPE) tokenizers"
        )
    pre = meta.get("tokenizer.ggml.pre", "default")
    if pre not in _GPT2_SPLIT + _DIGITS_SPLIT:
        raise ValueError(
            f"{where}tokenizer.ggml.pre = {pre!r} is not supported; supported: "
            f"{list(_GPT2_SPLIT + _DIGITS_SPLIT)}"
        )
    try:
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    except ImportError as exc:
        raise ImportError(INSTALL_TOKENIZERS) from exc
    tokens = meta.get("tokenizer.ggml.tokens")
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
        raise ValueError(f"{where}tokenizer.ggml.tokens must be a non-empty list of strings")
    merges = meta.get("tokenizer.ggml.merges")
    if not isinstance(merges, list):
        raise ValueError(f"{where}tokenizer.ggml.merges is missing (byte-level BPE needs it)")
    pairs = [tuple(m.split(" ")) for m in merges]
    bad = next((i for i, p in enumerate(pairs) if len(p) != 2), None)
    if bad is not None:
        raise ValueError(
            f"{where}tokenizer.ggml.merges[{bad}] = {merges[bad]!r} is not two tokens "
            "separated by one space"
        )
    types = meta.get("tokenizer.ggml.token_type") or [1] * len(tokens)
    if len(types) != len(tokens):
        raise ValueError(
            f"{where}tokenizer.ggml.token_type has {len(types)} entries for {len(tokens)} tokens"
        )
    spelling = _bytes_to_unicode()
    alphabet = set(spelling.values())

    def spell(token):
        if set(token) <= alphabet:
            return token
        return "".join(spelling[b] for b in token.encode("utf-8"))

    vocab = {spell(t): i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab, pairs, fuse_unk=False))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in _DIGITS_SPLIT:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level]
        )
    else:
        tok.pre_tokenizer = byte_level
    tok.decoder = decoders.ByteLevel()
    control = [
        AddedToken(t, special=True, normalized=False)
        for t, kind in zip(tokens, types)
        if kind == 3 and set(t) <= alphabet  # CONTROL
    ]
    user = [
        AddedToken(spell(t), special=False, normalized=False)
        for t, kind in zip(tokens, types)
        if kind == 4  # USER_DEFINED
    ]
    tok.add_special_tokens(control)
    tok.add_tokens(user)
    if tok.get_vocab_size(with_added_tokens=True) != len(vocab):
        raise ValueError(
            f"{where}tokenizer.ggml.tokens: the added tokens are not in the vocabulary"
        )
    bos = meta.get("tokenizer.ggml.bos_token_id")
    if meta.get("tokenizer.ggml.add_bos_token") and bos is not None:
        if not 0 <= bos < len(tokens):
            raise ValueError(f"{where}tokenizer.ggml.bos_token_id = {bos} is not a token id")
        name = spell(tokens[bos])
        tok.post_processor = processors.TemplateProcessing(
            single=f"{name} $A", pair=f"{name} $A {name} $B", special_tokens=[(name, bos)]
        )
    return tok
