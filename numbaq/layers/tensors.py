"""PyTorch tensors as numpy arrays, for the layer kinds' ``from_torch``.

Duck typed: a tensor's own methods do the work, so this module imports torch only to
read a quantized weight's ``qscheme`` (and only when called).
"""

from __future__ import annotations

import numpy as np

from ..qparams import QScheme
from ..weights import QuantizedWeight


def tensor_array(t) -> np.ndarray | None:
    """A float tensor's values as a float32 numpy copy; None stays None.

    bfloat16 has no numpy dtype: it goes through float32 first, exactly.

    Parameters
    ----------
    t : torch.Tensor or None
        A float tensor (a parameter, a buffer), on any device.

    Returns
    -------
    float32 ndarray or None
        The values, detached and on the CPU.
    """
    if t is None:
        return None
    t = t.detach().cpu()
    if t.is_floating_point():
        t = t.float()
    return t.numpy().astype(np.float32)


def tensor_qweight(qtensor) -> QuantizedWeight:
    """A torch qint8 weight (per tensor or per channel, symmetric) as a QuantizedWeight.

    Parameters
    ----------
    qtensor : torch.Tensor
        A quantized weight, as ``torch.ao``'s dynamic layers hold it.

    Returns
    -------
    QuantizedWeight
        The same int8 codes and scales.

    Raises
    ------
    ValueError
        If the weight is not symmetric, or per channel along another axis than 0.
    """
    import torch

    per_channel = qtensor.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric)
    if per_channel:
        if qtensor.q_per_channel_axis() != 0:
            raise ValueError("per-channel torch weights must be quantized along axis 0")
        scale = qtensor.q_per_channel_scales().numpy()
        zero_point = qtensor.q_per_channel_zero_points().numpy()
    else:
        scale, zero_point = qtensor.q_scale(), qtensor.q_zero_point()
    if np.any(np.asarray(zero_point) != 0):
        raise ValueError("numbaq needs symmetric int8 weights (zero point 0)")
    scheme = QScheme("int8", True, "row" if per_channel else "tensor", name="torch weights")
    return QuantizedWeight.from_int8(qtensor.int_repr().numpy(), scale, scheme)
