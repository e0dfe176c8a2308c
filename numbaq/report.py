"""Seeing what quantization did: :func:`compare`, :func:`trace`, :func:`batch_independent`."""

from __future__ import annotations

import contextlib
import html
import threading
import warnings

import numpy as np

from . import metrics
from .checks import as_float32, check_axis
from .layers import Module


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def _torch_model(model) -> bool:
    """Whether ``model`` is a ``torch.nn.Module`` (e.g. from ``numbaq.torch``)."""
    return not isinstance(model, Module) and hasattr(model, "register_forward_hook")


def _call(model, *inputs, **kwargs):
    if _torch_model(model):
        from ._torch_support import run_inference

        return run_inference(model, *inputs, **kwargs)  # under torch.inference_mode
    return model(*inputs, **kwargs)


def _check_model(model, name: str) -> None:
    if not (isinstance(model, Module) or _torch_model(model)):
        raise TypeError(
            f"{name} must be a numbaq Module (or a torch model from numbaq.torch), "
            f"got {type(model).__name__}"
        )


def _weights_differ(float_model, quant_model) -> list[str]:
    """Names of the dynamic Linears of ``quant_model`` whose int8 weights are not a
    quantization of ``float_model``'s weights of the same name: some weight is further
    from its dequantized code than half a quantization step (the most rounding moves it)."""
    if not (isinstance(float_model, Module) and isinstance(quant_model, Module)):
        return []
    floats = dict(float_model.named_modules())
    differ = []
    for name, module in quant_model.named_modules():
        w = getattr(floats.get(name), "weight", None)
        if type(module).__name__ != "QuantLinear" or w is None or w.shape != module.qweight.shape:
            continue
        qw = module.qweight
        step = qw.scale if qw.scale.ndim == 1 else np.repeat(qw.scale, qw.group_size, axis=1)
        step = step[:, None] if step.ndim == 1 else step
        error = np.abs(np.asarray(w, np.float64) - qw.dequantize())
        if (error > 0.5 * step * (1 + 1e-5) + 1e-30).any():
            differ.append(name or "(model)")
    return differ


class Trace(dict):
    """``{layer name: [call, ...]}``; each call holds the runtime ``scale`` and
    ``zero_point`` arrays (and, for recurrent layers, which ``projection``).

    Made by :func:`trace`; :meth:`summary` gives one row per layer.

    Examples
    --------
    >>> from numbaq.layers import Linear, QuantLinear
    >>> t = trace(QuantLinear.from_float(Linear(np.eye(2))), np.ones((3, 2)))
    >>> [(row["layer"], row["calls"]) for row in t.summary()]
    [('', 1)]
    """

    def summary(self) -> list[dict]:
        """One row per layer: calls, and the range of the runtime scales.

        Returns
        -------
        list of dict
            Keys ``layer``, ``calls``, ``scale_min``, ``scale_max``.
        """
        rows = []
        for name, calls in self.items():
            scales = np.concatenate([np.ravel(c["scale"]) for c in calls]) if calls else np.zeros(0)
            rows.append(
                {
                    "layer": name,
                    "calls": len(calls),
                    "scale_min": float(scales.min()) if scales.size else float("nan"),
                    "scale_max": float(scales.max()) if scales.size else float("nan"),
                }
            )
        return rows

    def __repr__(self) -> str:
        lines = ["Trace: runtime activation scales per layer"]
        for r in self.summary():
            lines.append(
                f"  {r['layer'] or '(model)'}: {r['calls']} calls, scale in "
                f"[{r['scale_min']:.4g}, {r['scale_max']:.4g}]"
            )
        return "\n".join(lines)


def trace(model: Module, *inputs, **kwargs) -> Trace:
    """Run ``model(*inputs, **kwargs)`` and record every dynamic layer's runtime scales.

    These are the numbers behind "dynamic quantization adapts per input": run it on two
    inputs and watch the scales follow them. ``model`` may also be a torch model from
    :func:`numbaq.torch.quantize_dynamic` (torch inputs; run under inference mode).

    Parameters
    ----------
    model : Module
        A model with dynamically quantized layers.
    *inputs
        Passed to ``model``.
    **kwargs
        Passed to ``model``.

    Returns
    -------
    Trace
        ``{layer name: [call, ...]}``, each call's runtime ``scale`` and ``zero_point``.

    Examples
    --------
    >>> from numbaq.layers import Linear, QuantLinear
    >>> layer = QuantLinear.from_float(Linear(np.eye(3)))
    >>> t = trace(layer, np.array([[1.0, 2.0, 3.0]]))
    >>> t[""][0]["scale"].astype(float).round(4).tolist()  # (3 - 0) / 255
    [0.0118]
    """
    _check_model(model, "model")
    with _tracing(model) as collect:
        _call(model, *inputs, **kwargs)
        return collect()


def _traceable(module) -> bool:
    """A numbaq layer that logs its scales (it set ``trace_log``), or a torch wrapper
    of one (which has the property)."""
    if isinstance(module, Module):
        return bool(module.__dict__.get("_traceable"))
    return hasattr(module, "trace_log")


@contextlib.contextmanager
def _tracing(model: Module):
    """Turn on every dynamic layer's trace log while the block runs; yields a function
    that returns what was logged as a :class:`Trace`. The logs are per thread
    (:attr:`Module.trace_log`): calls from other threads are not recorded."""
    layers = [(name, m) for name, m in model.named_modules() if _traceable(m)]
    for _, module in layers:
        module.trace_log = []
    try:
        yield lambda: Trace((name, list(module.trace_log)) for name, module in layers)
    finally:
        for _, module in layers:
            module.trace_log = None


def _record(model: Module, *inputs, **kwargs) -> dict:
    """``{name: (input, output)}`` of every module while ``model(*inputs)`` runs."""
    if _torch_model(model):
        from ._torch_support import record_calls as record_torch

        return record_torch(model, *inputs, **kwargs)
    seen: dict = {}
    names = {id(m): name for name, m in model.named_modules()}

    caller = threading.get_ident()

    def recorder(module, args, out):
        if threading.get_ident() == caller:  # not other threads' calls of the same model
            seen[names[id(module)]] = (args[0] if args else None, _first(out))

    modules = [m for _, m in model.named_modules()]
    for module in modules:
        module._recorder = recorder
    try:
        model(*inputs, **kwargs)
    finally:
        for module in modules:
            module._recorder = None
    return seen


def _clipped(x, calls, scheme) -> float:
    """Fraction of activations that saturated when quantized: per row, per tensor (one
    scale a row, repeated) or per block (``scale`` (M, K // block): the blocks are rows)."""
    if x is None or not calls or scheme.granularity not in ("row", "tensor", "block"):
        return float("nan")
    scale = np.asarray(calls[0]["scale"], np.float64).reshape(-1, 1)
    x = np.asarray(x, np.float64).reshape(scale.shape[0], -1)
    zero_point = np.asarray(calls[0]["zero_point"], np.float64).reshape(-1, 1)
    qmin, qmax = scheme.clamp_range
    codes = np.rint(x / scale) + zero_point
    return float(np.mean((codes < qmin) | (codes > qmax)))


class Comparison(list):
    """Per-layer error table of :func:`compare` (a list of dicts); renders as HTML in
    Jupyter and as text elsewhere.

    Parameters
    ----------
    iterable : iterable of dict, optional
        The rows, with the keys in ``columns``.

    Examples
    --------
    >>> from numbaq.layers import Linear
    >>> import numbaq
    >>> model = Linear(np.eye(4))
    >>> table = compare(model, numbaq.quantize_dynamic(model), np.ones((2, 4)))
    >>> isinstance(table, Comparison), table[0]["layer"], table[0]["type"]
    (True, '(model)', 'QuantLinear')
    """

    columns = (
        "layer",
        "type",
        "sqnr_db",
        "max_abs_error",
        "cosine",
        "scale_min",
        "scale_max",
        "clipped",
    )

    def _cells(self, row) -> list[str]:
        out = []
        for col in self.columns:
            value = row[col]
            if col == "cosine":
                out.append(f"{value:.6f}")
            else:
                out.append(f"{value:.4g}" if isinstance(value, float) else str(value))
        return out

    def __repr__(self) -> str:
        rows = [list(self.columns)] + [self._cells(r) for r in self]
        widths = [max(len(r[i]) for r in rows) for i in range(len(self.columns))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in self._cells(r)) + "</tr>"
            for r in self
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _check_finite_outputs(reference: dict, recorded: dict, float_model, quant_model) -> None:
    """Refuse, in :func:`compare`'s terms, the first layer (in call order) whose output in
    either model holds NaN or Inf: no error can be measured against it."""
    models = {"float_model": float_model, "quant_model": quant_model}
    for name, (_, ref_out) in reference.items():
        out = recorded.get(name, (None, None))[1]
        if ref_out is None or out is None or np.shape(ref_out) != np.shape(out):
            continue  # not compared
        for model, values in (("float_model", ref_out), ("quant_model", out)):
            if np.isfinite(np.asarray(values, np.float64)).all():
                continue
            module = dict(models[model].named_modules()).get(name)
            kind = type(getattr(module, "numbaq", module)).__name__
            layer = f"layer {name!r}" if name else "the model itself"
            raise ValueError(
                f"compare: {model}'s output at {layer} ({kind}) is not finite (it holds "
                f"NaN or Inf) on these inputs, so no error can be measured there; run "
                f"{model} on them to see where (NaN or very large values in the inputs, or a "
                "layer that overflows) and clean or rescale the inputs"
            )


def compare(float_model: Module, quant_model: Module, *inputs, **kwargs) -> Comparison:
    """Run both models on ``inputs`` (and keyword ``kwargs``) and compare every layer's output.

    ``quant_model`` is ``float_model`` after :func:`numbaq.quantize_dynamic` (the same
    tree of names); a ``UserWarning`` names the dynamic Linears whose int8 weights are not
    a quantization of the float model's (another model's weights). Each row: SQNR (dB),
    max abs error and cosine of the layer's output
    against the float model's, the range of the runtime activation scales, and the
    fraction of activations that were clipped. The float model's own layer outputs are
    the reference, so the error of each row includes what earlier layers let through.
    Torch models (``numbaq.torch.quantize_dynamic`` against its float original) compare
    the same way: each module's first float output tensor, under inference mode.

    Parameters
    ----------
    float_model : Module
        The reference model.
    quant_model : Module
        Its quantized copy, with the same layer names.
    *inputs
        Passed to both models.
    **kwargs
        Passed to both models.

    Returns
    -------
    Comparison
        One row per layer that both models ran, in call order.

    Raises
    ------
    ValueError
        If a layer's output in either model is not finite (NaN or Inf): the first such
        layer in call order is named.

    Examples
    --------
    >>> import numbaq
    >>> from numbaq.layers import Linear, ReLU, Sequential
    >>> rng = np.random.default_rng(0)
    >>> model = Sequential(Linear(rng.normal(size=(8, 8))), ReLU())
    >>> rows = compare(model, numbaq.quantize_dynamic(model), rng.normal(size=(4, 8)))
    >>> [r["layer"] for r in rows], rows[1]["sqnr_db"] > 30
    (['(model)', '0', '1'], True)
    """
    _check_model(float_model, "float_model")
    _check_model(quant_model, "quant_model")
    differ = _weights_differ(float_model, quant_model)
    if differ:
        warnings.warn(
            f"compare: the weights of {differ[:3]}{' and more' if len(differ) > 3 else ''} "
            "are not a quantization of float_model's: quant_model is not float_model "
            "quantized, so the errors below also measure different weights",
            stacklevel=2,
        )
    reference = _record(float_model, *inputs, **kwargs)
    with _tracing(quant_model) as collect:  # outputs and scales from one run
        recorded = _record(quant_model, *inputs, **kwargs)
        scales = collect()
    _check_finite_outputs(reference, recorded, float_model, quant_model)
    table = Comparison()
    for name, module in quant_model.named_modules():
        if name not in reference or name not in recorded:
            continue
        ref_out, out = reference[name][1], recorded[name][1]
        if ref_out is None or out is None or np.shape(ref_out) != np.shape(out):
            continue  # a torch module without a float tensor output
        calls = scales.get(name, [])
        all_scales = np.concatenate([np.ravel(c["scale"]) for c in calls]) if calls else None
        kind = type(getattr(module, "numbaq", module)).__name__  # numbaq.torch: the layer run
        table.append(
            {
                "layer": name or "(model)",
                "type": kind,
                "sqnr_db": metrics.sqnr(ref_out, out),
                "max_abs_error": metrics.max_abs_error(ref_out, out),
                "cosine": metrics.cosine(ref_out, out),
                "scale_min": float(all_scales.min()) if all_scales is not None else float("nan"),
                "scale_max": float(all_scales.max()) if all_scales is not None else float("nan"),
                "clipped": _clipped(recorded[name][0], calls, module.scheme)
                if getattr(module, "scheme", None) is not None and kind == "QuantLinear"
                else float("nan"),
            }
        )
    return table


def batch_independent(model: Module, x, batch_axis: int = 0) -> bool:
    """Whether each item of the batch gets the same output alone as with batch-mates,
    bit for bit. Per-token schemes give ``True``; per-tensor schemes share one scale
    across the batch and generally do not.

    Parameters
    ----------
    model : Module
        Any model taking one batched array.
    x : array
        The batch.
    batch_axis : int
        The axis of ``x`` that indexes the batch, in ``[-x.ndim, x.ndim)``.

    Returns
    -------
    bool
        True if every item's output alone equals its output in the batch, exactly.

    Examples
    --------
    >>> from numbaq.layers import Linear, QuantLinear
    >>> layer = QuantLinear.from_float(Linear(np.random.default_rng(0).normal(size=(4, 8))))
    >>> batch_independent(layer, np.random.default_rng(1).normal(size=(5, 8)))
    True
    """
    if not callable(model):
        raise TypeError(f"model must be a model to call on x, got {type(model).__name__}")
    x = as_float32(x)
    if x.ndim == 0:
        raise ValueError("x must have a batch axis, got a 0-d array")
    batch_axis = check_axis(batch_axis, x.ndim, "batch_axis")
    together = _first(model(x))
    for i in range(x.shape[batch_axis]):
        alone = _first(model(np.take(x, [i], axis=batch_axis)))
        out_axis = batch_axis if together.ndim == x.ndim else 0
        if not np.array_equal(alone, np.take(together, [i], axis=out_axis)):
            return False
    return True
