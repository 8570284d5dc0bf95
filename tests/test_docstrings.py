"""The public API's docstrings are complete enough to stand as its reference, in Google style.

The public API is every name in the ``__all__`` of ``cldprov_async``, ``cldprov_async.models``,
``cldprov_async.errors`` and ``cldprov_async.testing``, read the way the documentation site
reads it (griffe, the site's extension, the Google parser), and of each public class its
public members, inherited ones included. For each:

- a docstring, for every module, class, function, method, property, constant and type alias;
- every parameter described in ``Args:`` (a class's in its own docstring, its ``__init__``'s
  or, for attrs classes, ``Attributes:``), and no description of a parameter that is not there;
- ``Returns:`` (or ``Yields:``) for a function that returns something, ``Raises:`` for one
  that raises on purpose (a ``raise`` in its body) or makes requests (a coroutine of an
  operations class);
- public data attributes (instance attributes, enum members) described in ``Attributes:``
  of their class (or a base) or in a docstring of their own;
- type annotations on every parameter and return value shown;
- every signature the site's griffe extension makes (attrs ``__init__``, functions attached
  as methods) equal to ``inspect.signature`` of the real object.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import griffe
import pytest

ROOT = Path(__file__).resolve().parent.parent
HOOKS = ROOT / "docs" / "hooks"
sys.path.insert(0, str(HOOKS))
import cldprov_apiref  # noqa: E402
import cldprov_griffe  # noqa: E402

SECTIONS = griffe.DocstringSectionKind


@pytest.fixture(scope="module")
def package() -> Any:
    extensions = griffe.load_extensions(f"{HOOKS / 'cldprov_griffe.py'}:ClassInterface")
    return griffe.load(
        "cldprov_async",
        extensions=extensions,
        search_paths=[ROOT],
        docstring_parser="google",
        resolve_aliases=True,
        resolve_external=False,
    )


def resolve(package: Any, path: str) -> Any:
    obj = package[path.removeprefix("cldprov_async.")] if path != "cldprov_async" else package
    return obj.final_target if obj.is_alias else obj


def runtime(path: str) -> Any:
    """The real object at a dotted public path."""
    module, _, rest = path.partition(".")
    obj: Any = importlib.import_module(module)
    for part in rest.split(".") if rest else []:
        try:
            obj = getattr(obj, part)
        except AttributeError:
            obj = importlib.import_module(f"{obj.__name__}.{part}")
    return obj


def names_in(obj: Any, *kinds: griffe.DocstringSectionKind) -> set[str]:
    if obj is None or obj.docstring is None:
        return set()
    found = set()
    for section in obj.docstring.parsed:
        if section.kind in kinds:
            found |= {item.name.lstrip("*") for item in section.value}
    return found


def has_section(obj: Any, *kinds: griffe.DocstringSectionKind) -> bool:
    return obj.docstring is not None and any(s.kind in kinds for s in obj.docstring.parsed)


def public_members(cls: Any) -> Iterator[tuple[str, Any]]:
    for name, member in cls.all_members.items():
        if name.startswith("_"):
            continue
        yield name, member.final_target if member.is_alias else member


def class_chain(cls: Any) -> list[Any]:
    try:
        return [cls, *cls.mro()]
    except ValueError:
        return [cls]


def raises_on_purpose(func: Any, real: Any) -> bool:
    """An operation (a coroutine of an operations class: it makes requests), or a function
    with a ``raise`` in its own body."""
    owner = func.parent
    is_method = "async" in func.labels and isinstance(owner, griffe.Class)
    if is_method and any(c.name == "Operations" for c in class_chain(owner)):
        return True
    try:
        source = inspect.getsource(real)
    except (OSError, TypeError):
        return False
    body = source.split('"""')[-1] if source.count('"""') >= 2 else source
    return any(line.strip().startswith("raise ") for line in body.splitlines())


class Audit:
    """Walks the public API, collecting what is missing."""

    def __init__(self, package: Any) -> None:
        self.package = package
        self.missing: list[str] = []
        self.objects = 0
        self.parameters = 0
        self.done: set[str] = set()

    def need(self, ok: bool, what: str) -> None:
        if not ok:
            self.missing.append(what)

    def run(self) -> None:
        for entry in cldprov_apiref.entries(self.package):
            if entry.is_module:
                continue
            self.object(entry.public_path, resolve(self.package, entry.public_path))
        for module in cldprov_apiref.PUBLIC_MODULES:
            self.object(module, resolve(self.package, module))

    def object(self, path: str, obj: Any) -> None:
        if path in self.done:
            return
        self.done.add(path)
        self.objects += 1
        self.need(bool(obj.docstring and obj.docstring.value.strip()), f"{path}: no docstring")
        if isinstance(obj, griffe.Class):
            self.cls(path, obj)
        elif isinstance(obj, griffe.Function):
            self.function(path, obj, runtime(path))

    def cls(self, path: str, cls: Any) -> None:
        chain = class_chain(cls)
        described = set().union(*(names_in(c, SECTIONS.attributes) for c in chain))
        init = cls.members.get("__init__")
        if init is not None and not init.is_alias:
            params = [p for p in init.parameters if p.name not in ("self", "cls")]
            documented = names_in(cls, SECTIONS.parameters, SECTIONS.attributes)
            documented |= names_in(init, SECTIONS.parameters)
            for p in params:
                self.parameters += 1
                self.need(p.name in documented, f"{path}({p.name}): parameter not described")
                typed = p.annotation is not None or p.kind.name.startswith("var")
                self.need(typed, f"{path}({p.name}): no type annotation")
        for name, member in public_members(cls):
            where = f"{path}.{name}"
            if isinstance(member, griffe.Attribute) and "property" not in member.labels:
                own = bool(member.docstring and member.docstring.value.strip())
                self.need(own or name in described, f"{where}: attribute not described")
            elif isinstance(member, griffe.Function | griffe.Attribute):
                self.object(where, member)

    def function(self, path: str, func: Any, real: Any) -> None:
        is_property = "property" in func.labels
        params = [p for p in func.parameters if p.name not in ("self", "cls")]
        documented = names_in(func, SECTIONS.parameters, SECTIONS.other_parameters)
        actual = {p.name for p in params}
        for p in params:
            self.parameters += 1
            self.need(p.name in documented, f"{path}({p.name}): parameter not described")
            self.need(
                p.annotation is not None or p.kind.name.startswith("var"),
                f"{path}({p.name}): no type annotation",
            )
        self.need(documented <= actual, f"{path}: describes {sorted(documented - actual)}")
        self.need(func.returns is not None, f"{path}: no return annotation")
        returns_something = str(func.returns) not in ("None", "")
        if returns_something and not is_property:
            self.need(
                has_section(func, SECTIONS.returns, SECTIONS.yields),
                f"{path}: no Returns/Yields section",
            )
        if not is_property and raises_on_purpose(func, real):
            self.need(has_section(func, SECTIONS.raises), f"{path}: no Raises section")


@pytest.fixture(scope="module")
def audit(package: Any) -> Audit:
    done = Audit(package)
    done.run()
    return done


def test_the_reference_reads_each_all_as_python_does(package: Any) -> None:
    for module in cldprov_apiref.PUBLIC_MODULES:
        runtime_all = list(importlib.import_module(module).__all__)
        assert cldprov_apiref.exported(package, module) == runtime_all, module


def test_the_public_api_is_documented_completely(audit: Audit) -> None:
    assert audit.objects >= 80 and audit.parameters >= 200, (audit.objects, audit.parameters)
    assert not audit.missing, "\n".join(audit.missing)


def made_signatures(package: Any) -> Iterator[tuple[str, Any, Any]]:
    """(path, the griffe function the extension made, the real callable it describes)."""
    for entry in cldprov_apiref.entries(package):
        obj = None if entry.is_module else resolve(package, entry.public_path)
        if not isinstance(obj, griffe.Class):
            continue
        for name, member in [("__init__", obj.members.get("__init__")), *public_members(obj)]:
            made = member is not None and cldprov_griffe.EXTRA in member.extra
            if made and isinstance(member, griffe.Function):
                real = runtime(entry.public_path)
                yield f"{entry.public_path}.{name}", member, getattr(real, name)


def test_every_signature_the_extension_makes_is_the_real_one(package: Any) -> None:
    made = list(made_signatures(package))
    kinds = {m.extra[cldprov_griffe.EXTRA]["made_from"] == "attrs" for _, m, _ in made}
    assert len(made) >= 20 and kinds == {True, False}, [p for p, _, _ in made]
    for path, func, real in made:
        shown = [(p.name, p.kind.value, p.default is not None) for p in func.parameters]
        signature = inspect.signature(real)
        expected = [
            (p.name, p.kind.description, p.default is not p.empty)
            for p in signature.parameters.values()
        ]
        if func.extra[cldprov_griffe.EXTRA]["made_from"] != "attrs":
            expected[0] = ("self", expected[0][1], False)  # the function's first parameter
        assert shown == expected, path
