"""The README, the project's front page (and the site's): short, its example runs and prints
what it shows, its commands are the ones CI uses, its links lead somewhere.

The examples that used to live here are in ``docs/`` now; ``test_docs_examples.py`` runs them.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```\n\n```text title=\"Output\"\n(.*?)```", README, re.S)
MAX_LINES = 200


def test_the_readme_is_a_front_page() -> None:
    assert len(README.splitlines()) <= MAX_LINES
    assert "mkdocs serve" in README
    assert README.count("```python") == len(BLOCKS) == 1, "one example, with its output"


def test_the_example_prints_its_output(tmp_path: Path) -> None:
    ((code, output),) = BLOCKS
    script = tmp_path / "example.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == output.splitlines()


def test_links_lead_to_files_of_the_repository() -> None:
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if not re.match(r"^[a-z]+:", link)]
    assert len(local) >= 15, local
    for link in local:
        assert (ROOT / link).is_file(), link


def test_ci_installs_and_tests_with_the_readme_commands() -> None:
    install, test = re.findall(r"```sh\n(.*?)\n```", README, flags=re.S)[:2]
    ci = (ROOT / ".ci" / "run").read_text()
    assert install.endswith("&& .venv/bin/cldprov-async demo")
    assert install.removesuffix(" && .venv/bin/cldprov-async demo") in ci
    assert test in ci
