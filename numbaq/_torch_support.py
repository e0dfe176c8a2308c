"""What :mod:`numbaq.torch` builds on: tensor <-> array rules and the hooks
:func:`numbaq.compare` uses on torch models. (The layer description its state dicts carry
is :func:`numbaq.io.describe_layer`'s.)

Private; imports PyTorch.
"""

from __future__ import annotations

import numpy as np
import torch

_AUTOGRAD = (
    "{layer}: numbaq layers run inference only (int8 weights, no gradients), but {name} "
    "requires grad while grad mode is on. Run the model under torch.no_grad() or "
    "torch.inference_mode(), or keep this layer in float with quantize_dynamic(..., "
    "exclude=[...])"
)


def to_array(layer, x, name: str = "input"):
    """``(x as a float32 numpy view, dtype to cast the result back to or None)``."""
    kind = layer._label()
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{kind}: {name} must be a torch.Tensor, got {type(x).__name__} "
            "(numbaq's own layers take numpy arrays: layer.numbaq)"
        )
    if x.device.type != "cpu":
        raise ValueError(
            f"{kind}: {name} is on device {x.device}, but numbaq runs on the CPU; "
            "move the model and its inputs there with .cpu()"
        )
    if x.layout != torch.strided or x.is_quantized:
        raise TypeError(f"{kind}: {name} must be a dense float tensor, got layout {x.layout}")
    if x.requires_grad and torch.is_grad_enabled():
        raise RuntimeError(_AUTOGRAD.format(layer=kind, name=name))
    restore = None
    if x.dtype != torch.float32:
        if not x.is_floating_point():
            raise TypeError(
                f"{kind}: {name} must be a floating-point tensor, got {x.dtype}; "
                "convert it with .float()"
            )
        restore, x = x.dtype, x.float()
    return x.detach().contiguous().numpy(), restore


def to_tensor(y: np.ndarray, restore) -> torch.Tensor:
    out = torch.from_numpy(y)
    return out if restore is None else out.to(restore)


# ------------------------------------------------------------------ numbaq.compare / trace
def _first_array(value):
    """The first floating tensor in a module's output (tensor, tuple, dict or
    ``ModelOutput``) as a float32 numpy array, or None."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() and value.layout == torch.strided:
            return value.detach().float().cpu().numpy()
        return None
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        for item in value:
            found = _first_array(item)
            if found is not None:
                return found
    return None


def record_calls(model, *inputs, **kwargs) -> dict:
    """``{name: (input, output)}`` (numpy) of every module while ``model`` runs, under
    ``torch.inference_mode``; what :func:`numbaq.compare` uses for torch models."""
    seen: dict = {}
    handles = []
    for name, module in model.named_modules():

        def hook(mod, args, out, name=name):
            # copies: a later in-place op must not change what was recorded; the input
            # only where compare needs it (the clipped fraction of a QuantLinear)
            x = _first_array(args) if hasattr(type(mod), "numbaq_kind") else None
            y = _first_array(out)
            seen[name] = (None if x is None else x.copy(), None if y is None else y.copy())

        handles.append(module.register_forward_hook(hook))
    try:
        run_inference(model, *inputs, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def run_inference(model, *inputs, **kwargs):
    with torch.inference_mode():
        return model(*inputs, **kwargs)
