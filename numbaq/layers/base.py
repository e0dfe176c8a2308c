"""The layer graph's base: :class:`Module`, :class:`Sequential` and activations.

A module is a callable on numpy arrays with named parameters (numpy arrays) and named
child modules, like a very small ``torch.nn.Module`` without autograd.

A *layer kind* is a class defined with ``kind=True`` (``class Linear(Module, kind=True)``):
it is entered in :data:`LAYER_KINDS` under its name and declares, as class attributes and
class methods, everything the converters and the file format need (see :class:`Module`).
:func:`numbaq.quantize_dynamic`, :func:`numbaq.save` / :func:`numbaq.load`,
:func:`numbaq.from_torch` and :mod:`numbaq.torch` read these declarations; none of them
keeps a table of kinds.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict

import numpy as np

from ..checks import as_float32

_TRACES = threading.local()  # per thread: {id(module): list} while numbaq.trace runs

LAYER_KINDS: dict[str, type[Module]] = {}
"""Every layer kind by its class name, in the order they were defined: what
:func:`numbaq.load` looks a stored ``type`` up in. Filled by ``class X(Module, kind=True)``."""


def _register(cls: type[Module]) -> None:
    name = cls.__name__
    old = LAYER_KINDS.get(name)
    if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
        raise TypeError(
            f"a layer kind named {name!r} exists already ({old.__module__}.{old.__qualname__}); "
            "numbaq.save stores kinds by name: give this one another name"
        )
    twin = cls.float_twin
    if twin is not None and LAYER_KINDS.get(twin.__name__) is not twin:
        raise TypeError(f"{name}: float_twin {twin.__name__} is not a layer kind")
    LAYER_KINDS[name] = cls


def quantized_twins() -> dict[type[Module], type[Module]]:
    """``{float kind: its dynamically quantized kind}``, from the ``float_twin`` each
    quantized kind declares: what :func:`numbaq.quantize_dynamic` replaces.

    Returns
    -------
    dict of type to type
        In the order the kinds were defined.

    Examples
    --------
    >>> from numbaq.layers import Linear
    >>> quantized_twins()[Linear].__name__
    'QuantLinear'
    """
    return {k.float_twin: k for k in LAYER_KINDS.values() if k.float_twin is not None}


class Module:
    """Base class: children in ``self._modules``, arrays in ``self._params``.

    Subclasses set parameters with :meth:`_param` and children with :meth:`_child`, and
    implement ``forward``. ``__call__`` runs ``forward`` (and records the output for
    :func:`numbaq.compare` when a recorder is attached).

    A subclass defined with ``kind=True`` is a *layer kind* (in :data:`LAYER_KINDS`): its
    class attributes ``quantized``, ``float_twin``, ``per_group_weights``,
    ``torch_twins``, ``torch_subclasses`` and ``config_fields``, and its class methods
    ``from_float``, ``from_saved`` and ``from_torch``, are all that
    :func:`numbaq.quantize_dynamic`, :func:`numbaq.save` / :func:`numbaq.load`,
    :func:`numbaq.from_torch` and :mod:`numbaq.torch` know of it.

    Examples
    --------
    >>> from numbaq.layers import Linear, ReLU
    >>> model = Sequential(Linear(np.eye(2, dtype=np.float32)), ReLU())
    >>> [name for name, _ in model.named_modules()], sorted(model.parameters())
    (['', '0', '1'], ['0.weight'])
    """

    # ------------------------------------------------ what a layer kind declares
    quantized: bool = False
    """True for the quantized kinds: :func:`numbaq.save` stores their activation
    ``scheme``, the schemes of their ``qweights`` (as ``<name>_int8`` and ``<name>_scale``
    arrays) and their float ``bias*`` arrays."""
    float_twin: type[Module] | None = None
    """A dynamically quantized kind: the float kind :func:`numbaq.quantize_dynamic`
    replaces with it, through :meth:`from_float`."""
    per_group_weights: bool = False
    """Whether :meth:`from_float` takes ``group_size`` (one weight scale per group)."""
    torch_twins: tuple[str, ...] = ()
    """Qualified names of the PyTorch classes :func:`numbaq.from_torch` converts to this
    kind with :meth:`from_torch` (``"torch.nn.Linear"``; a quantized kind:
    ``"torch.ao.nn.quantized.dynamic.Linear"``). Names, so that importing numbaq never
    imports torch. :mod:`numbaq.torch` replaces the torch twins of a float kind with a
    torch module running its quantized twin."""
    torch_subclasses: bool = True
    """Whether subclasses of the torch twins convert too (False for activations:
    ``torch.ao``'s quantized ``ReLU6`` subclasses ``nn.ReLU``)."""
    config_fields: tuple[str, ...] = ()
    """The constructor settings :func:`numbaq.save` stores (``config()``) beside the
    arrays; :meth:`from_saved` receives them back."""

    def __init_subclass__(cls, kind: bool = False, **kwargs):
        super().__init_subclass__(**kwargs)
        if kind:
            _register(cls)

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

    # ---------------------------------------------- a layer kind's converters
    def config(self) -> dict:
        """The settings named by ``config_fields``, as :func:`numbaq.save` stores them.

        Returns
        -------
        dict
            ``{field: value}`` (plain Python values); empty for kinds without settings.
        """
        return {k: getattr(self, k) for k in self.config_fields}

    @classmethod
    def from_saved(cls, config: dict, arrays: dict, **stored) -> Module:
        """The layer :func:`numbaq.load` rebuilds from what :func:`numbaq.save` stored.

        The default builds ``cls(**config)`` and takes no arrays; kinds with arrays
        override it.

        Parameters
        ----------
        config : dict
            The stored ``config()``, its keys checked against ``config_fields``.
        arrays : dict of str to ndarray
            The layer's arrays by parameter name (quantized kinds: the ``bias*`` ones).
        **stored
            ``activation`` (its fused activation or None) and, for quantized kinds,
            ``weights`` (``{name: QuantizedWeight}``) and ``scheme`` (a ``QScheme``).

        Returns
        -------
        Module
            The layer.

        Raises
        ------
        ValueError
            If the arrays do not fit the layer.
        """
        if arrays:
            raise ValueError(f"{cls.__name__}: unexpected arrays {sorted(arrays)}")
        return cls(**config)

    @classmethod
    def from_torch(cls, module, scheme=None, convert=None) -> Module:
        """This kind from one of its ``torch_twins`` (see :func:`numbaq.from_torch`).

        Parameters
        ----------
        module : torch.nn.Module
            An instance of one of ``torch_twins``.
        scheme : QScheme, optional
            Activation scheme of a quantized kind.
        convert : callable, optional
            ``convert(child)`` converts a child module (containers use it).

        Returns
        -------
        Module
            The numbaq layer, weights copied.
        """
        raise NotImplementedError(f"{cls.__name__} declares no from_torch")

    def __repr__(self) -> str:
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not self._modules:
            return head + ")"
        lines = [head]
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"


class Sequential(Module, kind=True):
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

    torch_twins = ("torch.nn.Sequential",)

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

    @classmethod
    def from_torch(cls, module, scheme=None, convert=None) -> Sequential:
        """A torch ``nn.Sequential`` with each child converted by ``convert``.

        Parameters
        ----------
        module : torch.nn.Sequential
            The container.
        scheme : QScheme, optional
            Unused here: ``convert`` carries it to the children.
        convert : callable
            ``convert(child)`` -> numbaq Module.

        Returns
        -------
        Sequential
            The converted children, in order.
        """
        return cls(*(convert(child) for child in module))


class _Elementwise(Module):
    """An activation applied elementwise, in float32."""

    torch_subclasses = False

    def forward(self, x):
        return self.fn(as_float32(x)).astype(np.float32, copy=False)

    @classmethod
    def from_torch(cls, module, scheme=None, convert=None) -> Module:
        return cls()


class ReLU(_Elementwise, kind=True):
    """``max(x, 0)``, in float32.

    Examples
    --------
    >>> ReLU()(np.array([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """

    torch_twins = ("torch.nn.ReLU",)

    @staticmethod
    def fn(x):
        return np.maximum(x, np.float32(0))


class GELU(_Elementwise, kind=True):
    """Exact GELU, ``0.5 x (1 + erf(x / sqrt 2))``, in float32 (erf to 5e-7).

    Examples
    --------
    >>> GELU()(np.array([-1.0, 0.0, 1.0])).astype(float).round(4).tolist()
    [-0.1587, 0.0, 0.8413]
    """

    torch_twins = ("torch.nn.GELU",)
    torch_subclasses = True

    @classmethod
    def from_torch(cls, module, scheme=None, convert=None) -> GELU:
        if module.approximate != "none":
            raise ValueError("only the exact GELU (approximate='none') is supported")
        return cls()

    @staticmethod
    def fn(x):
        from ..kernels.mathf import _gelu_array

        out = np.empty(x.shape, np.float32)
        _gelu_array(np.ascontiguousarray(x).reshape(-1), out.reshape(-1))
        return out


class Tanh(_Elementwise, kind=True):
    """``tanh(x)``, in float32.

    Examples
    --------
    >>> Tanh()(np.array([0.0, 1.0])).astype(float).round(4).tolist()
    [0.0, 0.7616]
    """

    torch_twins = ("torch.nn.Tanh",)

    fn = staticmethod(np.tanh)


class Sigmoid(_Elementwise, kind=True):
    """``1 / (1 + exp(-x))``, in float32.

    Examples
    --------
    >>> Sigmoid()(np.array([0.0, 2.0])).astype(float).round(4).tolist()
    [0.5, 0.8808]
    """

    torch_twins = ("torch.nn.Sigmoid",)

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
