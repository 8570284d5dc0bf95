"""A griffe extension: the API reference shows what a user calls, however it is built.

Two things griffe's static analysis cannot see by itself:

- **Functions attached to a class as attributes** (``rotate_many = _bulk.rotate_many`` in
  ``AccessKeysAPI``): Python makes them methods, so they become methods here, their first
  parameter (the operations object) shown as ``self``, docstring and labels kept.
- **attrs classes** (``@frozen``, ``@define``, ``@attrs.frozen``...): attrs writes their
  ``__init__`` at run time; one is made here from the annotated fields, in order, with their
  defaults (``field(default=...)``, ``factory=``), aliases (a leading ``_`` dropped) and
  ``kw_only``, so each model shows its typed signature.

``tests/test_docstrings.py`` checks every signature made here against ``inspect.signature``
of the real object, so a wrong one fails a test rather than mislead a reader.

mkdocstrings loads this file by path (``extensions:`` in mkdocs.yml); the test loads it the
same way. Standard library and griffe only.
"""

from __future__ import annotations

from typing import Any

from griffe import (
    Attribute,
    Class,
    Docstring,
    Expr,
    ExprAttribute,
    ExprCall,
    ExprKeyword,
    ExprName,
    Extension,
    Function,
    Module,
    Object,
    Parameter,
    ParameterKind,
    Parameters,
)

#: Decorators that make a class an attrs class, by canonical path.
ATTRS_DECORATORS = frozenset(
    f"{module}.{name}"
    for module in ("attrs", "attr")
    for name in ("frozen", "define", "mutable", "s", "attrs")
)
#: Calls that declare an attrs field with options.
ATTRS_FIELDS = frozenset({"attrs.field", "attr.field", "attr.ib", "attr.attrib"})
POSITIONAL = ParameterKind.positional_or_keyword
#: The key of ``Object.extra`` where a made object says what it was made from.
EXTRA = "cldprov_griffe"


class ClassInterface(Extension):
    """Methods attached as function attributes, and the ``__init__`` attrs generates."""

    def on_package(self, *, pkg: Module, **kwargs: Any) -> None:
        """Rewrite every class of the package once it is loaded (aliases resolve then).

        Args:
            pkg: The package griffe loaded.
            **kwargs: Other arguments griffe passes to extensions.
        """
        for cls in _classes(pkg):
            _attach_functions(cls)
            if "__init__" not in cls.members and _attrs_decorator(cls) is not None:
                _add_attrs_init(cls)


def _classes(obj: Module | Class) -> list[Class]:
    """Every class defined in ``obj``, nested ones included (aliases skipped)."""
    found: list[Class] = []
    for member in obj.members.values():
        if member.is_alias:
            continue
        if isinstance(member, Class):
            found.append(member)
            found.extend(_classes(member))
        elif isinstance(member, Module):
            found.extend(_classes(member))
    return found


def _attach_functions(cls: Class) -> None:
    """``name = module.function`` in a class body becomes the method ``name``."""
    for name, member in list(cls.members.items()):
        if member.is_alias or not isinstance(member, Attribute):
            continue
        value = member.value
        if not isinstance(value, ExprName | ExprAttribute):
            continue
        try:
            target: Any = cls.modules_collection[value.canonical_path]
        except KeyError:
            continue
        if target.is_alias:
            target = target.final_target
        if isinstance(target, Function) and list(target.parameters):
            cls.set_member(name, _as_method(name, target, cls))


def _as_method(name: str, func: Function, cls: Class) -> Function:
    """A copy of ``func`` as a method of ``cls``: its first parameter becomes ``self``."""
    first, *rest = list(func.parameters)
    parameters = Parameters(
        Parameter("self", kind=first.kind),
        *(_copy(p) for p in rest),
    )
    method = Function(
        name,
        lineno=func.lineno,
        endlineno=func.endlineno,
        parent=cls,
        parameters=parameters,
        returns=func.returns,
        decorators=func.decorators,
    )
    if func.docstring is not None:
        method.docstring = Docstring(
            func.docstring.value,
            lineno=func.docstring.lineno,
            endlineno=func.docstring.endlineno,
            parent=method,
            parser=func.docstring.parser,
            parser_options=func.docstring.parser_options,
        )
    method.labels = set(func.labels)
    method.extra[EXTRA]["made_from"] = func.path
    return method


def _copy(parameter: Parameter) -> Parameter:
    return Parameter(
        parameter.name,
        annotation=parameter.annotation,
        kind=parameter.kind,
        default=parameter.default,
        docstring=parameter.docstring,
    )


def _attrs_decorator(cls: Class) -> Expr | None:
    for decorator in cls.decorators:
        value = decorator.value
        target = value.function if isinstance(value, ExprCall) else value
        is_attrs = isinstance(target, Expr) and target.canonical_path in ATTRS_DECORATORS
        if is_attrs and isinstance(value, Expr):
            return value
    return None


def _keywords(call: Expr | str | None) -> dict[str, str | Expr]:
    if not isinstance(call, ExprCall):
        return {}
    return {a.name: a.value for a in call.arguments if isinstance(a, ExprKeyword)}


def _add_attrs_init(cls: Class) -> None:
    """The ``__init__`` attrs generates, from the fields of ``cls`` and its attrs bases."""
    fields: dict[str, Parameter] = {}
    for klass in [*reversed(cls.mro()), cls]:
        decorator = _attrs_decorator(klass)
        if decorator is None:
            continue
        all_kw_only = str(_keywords(decorator).get("kw_only")) == "True"
        for member in klass.members.values():
            parameter = _attrs_parameter(member, all_kw_only)
            if parameter is not None:
                fields[parameter.name] = parameter
    ordered = sorted(fields.values(), key=lambda p: p.kind is ParameterKind.keyword_only)
    init = Function(
        "__init__",
        lineno=cls.lineno,
        endlineno=cls.lineno,
        parent=cls,
        parameters=Parameters(Parameter("self", kind=POSITIONAL), *ordered),
        returns="None",
    )
    init.extra[EXTRA]["made_from"] = "attrs"
    cls.set_member("__init__", init)


def _attrs_parameter(member: Object | Any, all_kw_only: bool) -> Parameter | None:
    """The ``__init__`` parameter of one attrs field, or None for anything else."""
    if member.is_alias or not isinstance(member, Attribute) or member.annotation is None:
        return None
    if "property" in member.labels:
        return None
    if "class-attribute" in member.labels and "instance-attribute" not in member.labels:
        return None  # ClassVar
    value = member.value
    options: dict[str, str | Expr] = {}
    default: str | Expr | None = value
    if isinstance(value, ExprCall) and value.function.canonical_path in ATTRS_FIELDS:
        options = _keywords(value)
        default = options.get("default")
        factory = options.get("factory")
        if isinstance(factory, Expr):
            default = ExprCall(function=factory, arguments=[])
    if str(options.get("init")) == "False":
        return None
    kw_only = all_kw_only or str(options.get("kw_only")) == "True"
    alias = options.get("alias")
    return Parameter(
        str(alias).strip("'\"") if alias is not None else member.name.lstrip("_"),
        annotation=member.annotation,
        kind=ParameterKind.keyword_only if kw_only else ParameterKind.positional_or_keyword,
        default=default,
        docstring=member.docstring,
    )
