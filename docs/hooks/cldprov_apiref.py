"""mkdocs hook: the API reference pages, generated from ``__all__`` whenever the site is built.

One page per public module (``PUBLIC_MODULES``). Every name in a module's ``__all__`` is
documented once, at its *public path*: the exporting public module nearest to where the
object is defined (``AccessKey``, defined in ``cldprov_async.models`` and exported by
``cldprov_async`` too, is documented on the models page; ``CldProvisioning``, defined in the
private ``_client``, on the ``cldprov_async`` page). A page lists the names it re-exports
with links to where they are documented. A name added to an ``__all__`` appears with no edit
here; a new public module is one more line in ``PUBLIC_MODULES`` (and in mkdocs.yml's nav).

What each entry shows (signatures, members, docstring sections) is mkdocstrings' work, with
the options in mkdocs.yml and the griffe extension ``cldprov_griffe.py``.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

import griffe
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

#: Module -> its reference page (``src_uri`` in the docs). Order: as in the nav.
PUBLIC_MODULES = {
    "cldprov_async": "reference/cldprov_async.md",
    "cldprov_async.models": "reference/models.md",
    "cldprov_async.errors": "reference/errors.md",
    "cldprov_async.testing": "reference/testing.md",
}

#: Names shown first on their page, in this order (the rest follow in ``__all__`` order).
FIRST = (
    "CldProvisioning",
    "AccessKeysAPI",
    "ProductEnvironmentOperations",
    "FakeProvisioningServer",
)


@dataclass(frozen=True)
class Entry:
    """One name of a module's ``__all__``, and where it is documented."""

    module: str
    name: str
    #: The defining module's dotted path (the object itself for a module).
    defined_in: str
    #: The public module whose page documents it.
    home: str

    @property
    def public_path(self) -> str:
        """Where the name is documented: ``home.name``, or the module itself."""
        if self.defined_in in PUBLIC_MODULES and self.defined_in.endswith("." + self.name):
            return self.defined_in
        return f"{self.home}.{self.name}"

    @property
    def is_module(self) -> bool:
        """A submodule listed in ``__all__`` (it has a page of its own)."""
        return self.defined_in == f"{self.module}.{self.name}" and self.defined_in in PUBLIC_MODULES


def load(package: str = "cldprov_async") -> Any:
    """The package as griffe reads it from source: fresh on every build (``mkdocs serve``
    included), without importing it."""
    return griffe.load(package, resolve_aliases=True, resolve_external=False)


def _module(package: Any, module: str) -> Any:
    return package if module == package.path else package[module.removeprefix(package.path + ".")]


def exported(package: Any, module: str) -> list[str]:
    """The names in ``module.__all__``, read from the source."""
    return [str(name) for name in _module(package, module).exports or ()]


def defining_module(package: Any, module: str, name: str) -> str:
    """The dotted path of the module that defines ``module.name``, read from the source.

    Constants and type aliases carry no ``__module__``, so the import statements decide:
    griffe follows ``from ._routes import DEFAULT_PAGE_SIZE`` to ``_routes``.
    """
    member = _module(package, module).members[name]
    target = member.final_target if member.is_alias else member
    if isinstance(target, griffe.Module):
        return str(target.path)
    return str(target.module.path)


def entries(package: Any | None = None) -> list[Entry]:
    """Every name of every public module's ``__all__``, with its home page's module."""
    package = load() if package is None else package
    alls = {module: exported(package, module) for module in PUBLIC_MODULES}
    found = []
    for module, names in alls.items():
        for name in names:
            defined_in = defining_module(package, module, name)
            exporters = [m for m in PUBLIC_MODULES if name in alls[m]]
            # The exporter nearest the definition: the longest dotted prefix of defined_in.
            near = [m for m in exporters if defined_in == m or defined_in.startswith(m + ".")]
            home = max(near, key=len) if near else module
            found.append(Entry(module, name, defined_in, home))
    return found


def page(module: str, all_entries: list[Entry]) -> str:
    """The Markdown of ``module``'s reference page: its docstring, then each name at home."""
    mine = [e for e in all_entries if e.module == module]
    lines = [
        f"# `{module}`",
        "",
        f"::: {module}",
        "    options:",
        "      members: false",
        "      show_root_heading: false",
        "      show_root_toc_entry: false",
        "",
    ]
    lead = {name: n for n, name in enumerate(FIRST)}
    for entry in sorted(mine, key=lambda e: lead.get(e.name, len(lead))):
        if entry.home == module and not entry.is_module:
            lines += [f"::: {entry.public_path}", ""]
    elsewhere = [e for e in mine if e.home != module or e.is_module]
    if elsewhere:
        lines += [
            "## Also exported here",
            "",
            f"These names can be imported from `{module}`; each is documented at one path.",
            "",
            "| name | documented at |",
            "|---|---|",
        ]
        lines += [f"| `{e.name}` | {_link(e, module)} |" for e in elsewhere]
        lines.append("")
    return "\n".join(lines)


def _link(entry: Entry, from_module: str) -> str:
    """A link to where ``entry`` is documented: its page for a module, else its anchor."""
    if entry.is_module:
        here = posixpath.dirname(PUBLIC_MODULES[from_module])
        target = posixpath.relpath(PUBLIC_MODULES[entry.public_path], here)
        return f"[`{entry.public_path}`]({target})"
    return f"[`{entry.public_path}`][{entry.public_path}]"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the generated reference pages to the site's files."""
    all_entries = entries()
    for module, src_uri in PUBLIC_MODULES.items():
        files.append(File.generated(config, src_uri, content=page(module, all_entries)))
    return files
