"""Every ```python block of the documentation runs, and prints what the page says it prints.

The blocks are read from ``docs/**/*.md`` and from the files those pages include with
``--8<-- "path"`` (excerpts of the library's own source, under ``cldprov_async/``, aside; the
README, which the site shows as its front page, is run by ``test_readme.py``). Each block is
one of:

- an example followed by a ```` ```text title="Output" ```` block: it runs as a script, must
  exit 0, and must print every line of that block, in that order (lines may be left out of
  the block, never changed);
- a pytest module (it defines ``test_`` functions): it runs under pytest with this package's
  plugin and must pass.

A block that is neither fails here: an example that shows no output asserts nothing.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import forked
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
#: Included files whose blocks are checked elsewhere or are not examples.
NOT_EXAMPLES = ("README.md", "cldprov_async/")
_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_SNIPPET = re.compile(r'^ *--8<-- +"(?P<path>[^"]+)" *$')


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it starts, its language line, its text."""

    where: str
    info: str
    code: str

    @property
    def language(self) -> str:
        return self.info.split()[0] if self.info.split() else ""


def blocks(path: Path, seen: frozenset[Path] = frozenset()) -> list[Block]:
    """The fenced blocks of ``path`` in order, with those of the files it includes."""
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    where = path.relative_to(ROOT)
    n = 0
    while n < len(lines):
        snippet = _SNIPPET.match(lines[n])
        opening = _FENCE.match(lines[n])
        if snippet:
            included = (ROOT / snippet["path"]).resolve()
            rel = included.relative_to(ROOT).as_posix()
            if included not in seen and not rel.startswith(NOT_EXAMPLES):
                found += blocks(included, seen | {path})
        elif opening:
            fence, indent, start = opening["fence"], len(opening["indent"]), n
            body: list[str] = []
            n += 1
            while n < len(lines) and not lines[n].strip().startswith(fence):
                body.append(lines[n][indent:])
                n += 1
            code = "\n".join(body) + "\n"
            found.append(Block(f"{where}:{start + 1}", opening["info"].strip(), code))
        n += 1
    return found


def examples() -> list[tuple[Block, Block | None]]:
    """Each python block, with the Output block right after it, if any."""
    pairs: list[tuple[Block, Block | None]] = []
    for page in sorted(DOCS.rglob("*.md")):
        found = blocks(page)
        for i, block in enumerate(found):
            if block.language != "python":
                continue
            after = found[i + 1] if i + 1 < len(found) else None
            is_output = after is not None and 'title="Output"' in after.info
            pairs.append((block, after if is_output else None))
    return pairs


EXAMPLES = examples()


def test_the_docs_have_examples_and_each_is_checked() -> None:
    assert len(EXAMPLES) >= 10, [b.where for b, _ in EXAMPLES]
    unchecked = [b.where for b, out in EXAMPLES if out is None and "def test_" not in b.code]
    assert not unchecked, f"python blocks with no Output block and no test: {unchecked}"


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return forked.run(args, capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize(
    ("block", "output"),
    [(b, o) for b, o in EXAMPLES if o is not None],
    ids=lambda value: value.where if isinstance(value, Block) else "",
)
def test_example_prints_its_output(block: Block, output: Block, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(block.code)
    done = _run([sys.executable, str(script)], tmp_path)
    assert done.returncode == 0, done.stderr
    printed = [line.rstrip() for line in done.stdout.splitlines()]
    position = 0
    for line in (line.rstrip() for line in output.code.splitlines() if line.strip()):
        assert line in printed[position:], (
            f"{block.where}: {line!r} not printed (in order); printed:\n{done.stdout}"
        )
        position = printed.index(line, position) + 1


@pytest.mark.parametrize(
    "block",
    [b for b, o in EXAMPLES if o is None and "def test_" in b.code],
    ids=lambda block: block.where,
)
def test_pytest_example_passes(block: Block, tmp_path: Path) -> None:
    (tmp_path / "test_example.py").write_text(block.code)
    done = _run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto"],
        tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b\d+ passed\b", done.stdout) and " failed" not in done.stdout
