"""The layer graph's base: :class:`Module`, :class:`Sequential` and activations.

A module is a callable on numpy arrays with named parameters (numpy arrays) and named
child modules, like a very small ``torch.nn.Module`` without autograd.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict

import numpy as np

from ..checks import as_float32

_TRACES = threading.local()  # per thread: {id(module): list} while numbaq.trace runs


class Module:
    """Base class: children in ``self._modules``, arrays in ``self._params``.

    Subclasses set parameters with :meth:`_param` and children with :meth:`_child`, and
    implement ``forward``. ``__call__`` runs ``forward`` (and records the output for
    :func:`numbaq.compare` when a recorder is attached).

    Examples
    --------
    >>> from numbaq.layers import Linear, ReLU
    >>> model = Sequential(Linear(np.eye(2, dtype=np.float32)), ReLU())
    >>> [name for name, _ in model.named_modules()], sorted(model.parameters())
    (['', '0', '1'], ['0.weight'])
    """

    quantized = False  # True for the dynamically quantized layers

    def __init__(self):
        self._modules: OrderedDict[str, Module] = OrderedDict()
        self._params: OrderedDict[str, np.ndarray] = OrderedDict()
        self._recorder = None

    def _param(self, name: str, value) -> np.ndarray | None:
        if value is None:
            self._params.pop(name, None)
            setattr(self, name, None)
            return None
        arr = np.ascontiguousarray(value)
        self._params[name] = arr
        setattr(self, name, arr)
        return arr

    def _child(self, name: str, module: Module) -> Module:
        """Register ``module`` as child ``name`` (also ``self.<name>`` if a valid name)."""
        self._modules[name] = module
        if name.isidentifier():
            setattr(self, name, module)
        return module

    @property
    def trace_log(self) -> list | None:
        """The list this layer appends its runtime scales to while :func:`numbaq.trace`
        runs *in the calling thread*; ``None`` otherwise. Per thread: a trace records only
        its own thread's calls."""
        logs = getattr(_TRACES, "logs", None)
        return logs.get(id(self)) if logs else None

    @trace_log.setter
    def trace_log(self, value: list | None) -> None:
        self.__dict__["_traceable"] = True  # layers that trace set it in __init__
        logs = _TRACES.__dict__.setdefault("logs", {})
        if value is None:
            logs.pop(id(self), None)
        else:
            logs[id(self)] = value

    def forward(self, *args):  # pragma: no cover - abstract
        """The layer's computation; call the module itself (``layer(x)``) to run it.

        Parameters
        ----------
        *args
            The layer's inputs (numpy arrays).

        Returns
        -------
        object
            The layer's output; each subclass documents its shapes.
        """
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        out = self.forward(*args, **kwargs)
        if self._recorder is not None:
            self._recorder(self, args, out)
        return out

    # ---------------------------------------------------------------- introspection
    def children(self):
        """Direct child modules.

        Returns
        -------
        iterator of Module
            In registration order.
        """
        return iter(self._modules.values())

    def named_modules(self, prefix: str = ""):
        """``(name, module)`` for this module and every descendant, depth first.

        Parameters
        ----------
        prefix : str
            Prepended, with a dot, to every name (this module's own name is ``prefix``).

        Yields
        ------
        name : str
            Dotted path from this module, ``""`` for itself.
        module : Module
            The module.
        """
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self, prefix: str = ""):
        """``(dotted name, array)`` for every parameter of the tree.

        Parameters
        ----------
        prefix : str
            Prepended, with a dot, to every name.

        Yields
        ------
        name : str
            E.g. ``"0.weight"``, as PyTorch names it.
        array : ndarray
            The parameter itself (not a copy).
        """
        for mod_name, module in self.named_modules(prefix):
            for name, value in module._params.items():
                yield (f"{mod_name}.{name}" if mod_name else name), value

    def parameters(self) -> dict[str, np.ndarray]:
        """All parameters by dotted name.

        Returns
        -------
        dict of str to ndarray
            As :meth:`named_parameters` yields them.
        """
        return dict(self.named_parameters())

    @property
    def nbytes(self) -> int:
        """Bytes held by the parameters of the whole tree."""
        return sum(v.nbytes for _, v in self.named_parameters())

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not self._modules:
            return head + ")"
        lines = [head]
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"


class Sequential(Module):
    """Modules applied one after the other: ``Sequential(Linear(...), ReLU(), ...)``.

    Parameters
    ----------
    *modules : Module
        Applied in order; named ``"0"``, ``"1"``, ... as in PyTorch.

    Examples
    --------
    >>> from numbaq.layers import Linear, ReLU
    >>> model = Sequential(Linear(np.eye(2)), ReLU())
    >>> model(np.array([[1.0, -1.0]])).tolist()
    [[1.0, 0.0]]
    """

    def __init__(self, *modules: Module):
        super().__init__()
        for i, module in enumerate(modules):
            if not isinstance(module, Module):
                raise TypeError(f"Sequential takes numbaq modules, got {type(module).__name__}")
            self._child(str(i), module)

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def forward(self, x):
        """Apply each module to the previous one's output.

        Parameters
        ----------
        x : array_like
            The first module's input.

        Returns
        -------
        object
            The last module's output.
        """
        for module in self._modules.values():
            x = module(x)
        return x


class _Elementwise(Module):
    """An activation applied elementwise, in float32."""

    def forward(self, x):
        return self.fn(as_float32(x)).astype(np.float32, copy=False)


class ReLU(_Elementwise):
    """``max(x, 0)``, in float32.

    Examples
    --------
    >>> ReLU()(np.array([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """

    @staticmethod
    def fn(x):
        return np.maximum(x, np.float32(0))


class GELU(_Elementwise):
    """Exact GELU, ``0.5 x (1 + erf(x / sqrt 2))``, in float32 (erf to 5e-7).

    Examples
    --------
    >>> GELU()(np.array([-1.0, 0.0, 1.0])).astype(float).round(4).tolist()
    [-0.1587, 0.0, 0.8413]
    """

    @staticmethod
    def fn(x):
        from ..kernels.mathf import _gelu_array

        out = np.empty(x.shape, np.float32)
        _gelu_array(np.ascontiguousarray(x).reshape(-1), out.reshape(-1))
        return out


class Tanh(_Elementwise):
    """``tanh(x)``, in float32.

    Examples
    --------
    >>> Tanh()(np.array([0.0, 1.0])).astype(float).round(4).tolist()
    [0.0, 0.7616]
    """

    fn = staticmethod(np.tanh)


class Sigmoid(_Elementwise):
    """``1 / (1 + exp(-x))``, in float32.

    Examples
    --------
    >>> Sigmoid()(np.array([0.0, 2.0])).astype(float).round(4).tolist()
    [0.5, 0.8808]
    """

    @staticmethod
    def fn(x):
        return np.float32(1) / (np.float32(1) + np.exp(-x))


def replace_modules(model: Module, replace, prefix: str = "") -> Module:
    """A copy of the tree where ``replace(name, module)`` returns a substitute (or None
    to keep the module and walk its children). Parameter arrays are shared, not copied.

    Parameters
    ----------
    model : Module
        The tree to walk (left unchanged).
    replace : callable
        ``replace(name, module) -> Module or None``, called for every module, parents
        before children, with its dotted name.
    prefix : str
        The name of ``model`` itself.

    Returns
    -------
    Module
        The new tree (``replace``'s result itself if it replaces ``model``).

    Examples
    --------
    >>> from numbaq.layers import Linear, ReLU, Sequential, Tanh
    >>> model = Sequential(Linear(np.eye(2)), ReLU())
    >>> swap = lambda name, m: Tanh() if isinstance(m, ReLU) else None
    >>> replace_modules(model, swap)
    Sequential(
      (0): Linear(in_features=2, out_features=2, bias=False)
      (1): Tanh()
    )
    """
    substitute = replace(prefix, model)
    if substitute is not None:
        return substitute
    new = copy.copy(model)
    new._modules = type(model._modules)()
    new._params = type(model._params)(model._params)
    for name, child in model._modules.items():
        new._child(name, replace_modules(child, replace, f"{prefix}.{name}" if prefix else name))
    return new
