"""The documentation: every public object is in the API reference, and its docstring is
numpydoc-complete (summary, every parameter described, returns, an example).

The site itself is built with warnings as errors in CI (``.ci/run``):
``python -m sphinx -W -b html docs <out>``.
"""

import importlib
import inspect
import re
from pathlib import Path

import pytest

import numbaq

numpydoc_validate = pytest.importorskip(
    "numpydoc.validate", reason="numpydoc is not installed: pip install -e .[docs]"
)
from numpydoc.docscrape import NumpyDocString  # noqa: E402

API = Path(__file__).resolve().parents[1] / "docs" / "api"
DIRECTIVE = re.compile(r"^\.\. (autofunction|autoclass|autodata|optional-automodule):: (\S+)")
MEMBERS = re.compile(r"^\s+:members: (.+)$")

# Checks for every documented function, class, method and property (numpydoc codes):
# GL08 no docstring, SS01 no summary, PR01 a parameter undocumented, PR02 a documented
# parameter that does not exist, PR04 a parameter without type (shape and dtype, for
# arrays), PR07 a parameter without description, RT01 no Returns section, RT03 a return
# value without description, YD01 no Yields section.
CHECKS = {"GL08", "SS01", "PR01", "PR02", "PR04", "PR07", "RT01", "RT03", "YD01"}
# Top-level functions and classes also need an Examples section (run by the doctests).
TOP_CHECKS = CHECKS | {"EX01"}


def _documented():
    """``(name, top_level)`` of everything the API reference renders."""
    out = []
    for page in sorted(API.glob("*.rst")):
        lines = page.read_text().splitlines()
        for i, line in enumerate(lines):
            match = DIRECTIVE.match(line)
            if not match:
                continue
            kind, name = match.groups()
            if kind == "autodata":
                continue
            if kind == "optional-automodule":
                try:
                    module = importlib.import_module(name)
                except ImportError:
                    continue  # the page says it is not available in this build
                options = lines[i + 1 : i + 4]
                listed = [m.group(1) for o in options if (m := MEMBERS.match(o))]
                names = [m.strip() for m in listed[0].split(",")] if listed else None
                out.extend(_module_api(module, names))
                continue
            out.append((name, True))
            if kind == "autoclass":
                options = lines[i + 1 : i + 4]
                listed = [m.group(1) for o in options if (m := MEMBERS.match(o))]
                if listed:
                    out.extend((f"{name}.{m.strip()}", False) for m in listed[0].split(","))
    return out


def _module_api(module, names=None):
    """A module's public functions and classes (``names``, ``__all__`` or its own), with
    their methods and properties (``extra_repr``, a repr hook, excepted)."""
    names = (
        names
        or getattr(module, "__all__", None)
        or [n for n, v in vars(module).items() if not n.startswith("_")]
    )
    out = []
    for n in names:
        obj = getattr(module, n, None)  # a listed part this build lacks is not rendered
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj):
            out.append((f"{module.__name__}.{n}", True))
        elif inspect.isclass(obj):
            out.append((f"{module.__name__}.{n}", True))
            for m, v in vars(obj).items():
                public = not m.startswith("_") and m != "extra_repr"
                if public and (inspect.isfunction(v) or isinstance(v, property)):
                    out.append((f"{module.__name__}.{n}.{m}", False))
    return out


DOCUMENTED = _documented()


def test_the_reference_covers_the_public_api():
    names = {name for name, _ in DOCUMENTED}
    text = "\n".join(p.read_text() for p in API.glob("*.rst"))
    missing = [
        n
        for n in numbaq.__all__
        if not inspect.ismodule(getattr(numbaq, n))
        and f"numbaq.{n}" not in names
        and f"numbaq.{n}\n" not in text + "\n"
    ]
    assert not missing, f"not in docs/api/*.rst: {missing}"
    for module in (numbaq.metrics, numbaq.observers, numbaq.outliers, numbaq.schemes):
        for name, _ in _module_api(module):
            if name.count(".") == 2:  # the module's own functions and classes
                assert name in names, f"{name} is not in docs/api/*.rst"


def _class_fields_undocumented(obj) -> list[str]:
    """A class's constructor arguments in neither its Parameters nor its Attributes
    (a dataclass documents its fields as Attributes); private ones (``_x``) excepted."""
    doc = NumpyDocString(inspect.getdoc(obj) or "")
    named = set()
    for section in ("Parameters", "Attributes", "Other Parameters"):
        for param in doc[section]:
            named.update(n.strip() for n in param.name.split(","))
    try:
        params = inspect.signature(obj).parameters.values()
    except ValueError:  # a builtin's subclass (dict, list) without its own __init__
        return []
    missing = []
    for p in params:
        shown = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name
        if not p.name.startswith("_") and p.name not in named and shown not in named:
            missing.append(shown)
    return missing


@pytest.mark.parametrize("name, top", DOCUMENTED, ids=[n for n, _ in DOCUMENTED])
def test_docstring_is_numpydoc_complete(name, top):
    wanted = TOP_CHECKS if top else CHECKS
    errors = [(c, m) for c, m in numpydoc_validate.validate(name)["errors"] if c in wanted]
    obj = numpydoc_validate.Validator._load_obj(name)
    if inspect.isclass(obj):  # its fields may be documented as Attributes
        errors = [(c, m) for c, m in errors if c != "PR01"]
        missing = _class_fields_undocumented(obj)
        if missing:
            errors.append(("PR01", f"Parameters {missing} not documented"))
    assert not errors, f"{name}:\n" + "\n".join(f"{c}: {m}" for c, m in errors)
