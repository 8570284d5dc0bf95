"""The documentation site, built with ``mkdocs build --strict`` and opened in a real Chromium.

Debian's ``chromium`` (``.ci/run`` installs it) driven by Playwright for Python through
``executable_path``: Playwright's own browser download is not used. The site is served from
this test's temporary directory on a free loopback port, and every page is loaded once:

- no console error, no page error, no failed request, no answer >= 400, and no request to
  any other host (no web fonts, CDN assets, analytics or badges: the site works offline),
  up to each page's last requests (its search index, then its favicon);
- the primary navigation, followed from the home page, reaches every page;
- the search box finds ``rotate_many``, and its first result opens the page holding its API
  entry.

The site is built, and browsed, once per test run, whichever test (or pytest-xdist worker)
needs it first; the others read what it left in the run's temporary directory.

Without a browser, the built HTML itself is checked too: every name of the public modules'
``__all__`` has its entry at one public path, the rotation methods are methods with
signatures, and the CLI reference names every subcommand and option of both parsers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import fcntl
import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import field
from pathlib import Path
from urllib.parse import urldefrag, urljoin

import pytest
from heavy import lower_this_process, lowered
from playwright.async_api import (
    BrowserContext,
    ConsoleMessage,
    Request,
    Response,
    Route,
    async_playwright,
    expect,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
#: As root, on a closed network: no sandbox, no GPU, and none of Chromium's own traffic.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: Tabs loading pages at the same time (more gained nothing on 2 cores, and cost CPU).
TABS = 2
#: What every page requests last, in this order (see ``_Tab.load``).
LAST_REQUESTS = ("search/search_index.json", "assets/images/favicon.png")

#: The pages mkdocs.yml's nav lists.
NAV_PAGES = re.findall(
    r"^ *- (?:[^:]+: )?(\S+\.md)$", (ROOT / "mkdocs.yml").read_text().split("\nnav:")[1], re.M
)

sys.path.insert(0, str(ROOT / "docs" / "hooks"))
import cldprov_apiref  # noqa: E402
import cldprov_cliref  # noqa: E402


def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This test run's own directory, shared by its pytest-xdist workers if there are any."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def only_one_at_a_time(path: Path) -> Iterator[None]:
    """Whichever worker comes first makes ``path``; the others wait, then read it."""
    with path.with_name(path.name + ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built as CI builds it, once per test run, in the run's temporary directory."""
    out = shared_dir(tmp_path_factory) / "docs-site"
    with only_one_at_a_time(out):
        if not (out / "index.html").exists():
            build(out)
    return out


def build(out: Path) -> None:
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet"]
    command += ["--site-dir", str(out)]
    done = subprocess.run(
        lowered(command),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr


def page_paths(site: Path) -> list[str]:
    """Every page of the built site as a URL path (``/``, ``/guides/fleet/``...)."""
    found = []
    for index in sorted(site.rglob("index.html")):
        relative = index.parent.relative_to(site).as_posix()
        found.append("/" if relative == "." else f"/{relative}/")
    return found


def html(site: Path, path: str) -> str:
    return (site / path.strip("/") / "index.html").read_text(encoding="utf-8")


# -- the built HTML ----------------------------------------------------------------------------


def test_every_exported_name_has_one_entry_at_its_public_path(site: Path) -> None:
    ids: dict[str, list[str]] = {}
    for path in page_paths(site):
        for anchor in re.findall(r'<h[1-6][^>]* id="([^"]+)"', html(site, path)):
            ids.setdefault(anchor, []).append(path)
    entries = cldprov_apiref.entries()
    assert len(entries) >= 60
    for entry in entries:
        if entry.is_module:
            continue
        assert ids.get(entry.public_path), f"{entry.public_path} has no entry"
        assert len(ids[entry.public_path]) == 1, (entry.public_path, ids[entry.public_path])
        for other in cldprov_apiref.PUBLIC_MODULES:
            if other != entry.home:
                assert f"{other}.{entry.name}" not in ids, f"{entry.name} documented twice"


def test_rotation_methods_are_methods_with_signatures(site: Path) -> None:
    page = html(site, "/reference/cldprov_async/")
    for method, parameter in [
        ("rotate", "verify"),
        ("rotate_many", "on_progress"),
        ("rotate_iter", "max_age"),
        ("iter_keys", "page_size"),
        ("generate", "access_key_request"),
    ]:
        anchor = f"cldprov_async.AccessKeysAPI.{method}"
        start = page.index(f'id="{anchor}"')
        entry = page[start : page.index("doc-contents", start)]
        assert "doc-symbol-method" in entry, method
        signature = re.sub(r"<[^>]+>", "", page[start : start + 6000])
        assert re.search(rf"{method}\(\s*{re.escape('sub_account_id')}", signature), method
        assert f"{parameter}:" in signature, (method, parameter)
        assert "api:" not in signature.split(")")[0], f"{method} shows its function parameter"


def test_docstrings_render_as_markdown_not_sphinx_roles(site: Path) -> None:
    for path in page_paths(site):
        text = re.sub(r"<[^>]+>", "", html(site, path))
        roles = re.findall(r":(?:class|meth|attr|data|func|mod|exc):`?\w", text)
        assert not roles, (path, roles)


def _options(parser: argparse.ArgumentParser) -> Iterator[str]:
    for action in parser._actions:
        yield from action.option_strings
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name
                yield from _options(sub)


def test_the_cli_reference_names_every_command_and_option(site: Path) -> None:
    page = html(site, "/reference/cli/")
    text = re.sub(r"<[^>]+>", "", page)
    for title, module, function in cldprov_cliref.PARSERS:
        parser = cldprov_cliref.parser_of(module, function)
        names = list(_options(parser))
        assert len(names) > 8, title
        for name in names:
            assert name in text, f"{title}: {name} missing"
    for command in ("cldprov-async keys generate", "cldprov-async rotate", "cldprov-async demo"):
        assert re.search(rf"<h[2-6][^>]*>.*?{re.escape(command)}</code>", page), command


# -- in the browser ----------------------------------------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(site: Path) -> Iterator[str]:
    """The site over HTTP on a free loopback port; yields its base URL."""
    handler = functools.partial(_Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@dataclasses.dataclass
class Visit:
    """What loading one page did."""

    problems: list[str] = field(default_factory=list)
    nav_links: set[str] = field(default_factory=set)


@dataclasses.dataclass
class Browsing:
    """Every page loaded once, and one search."""

    visits: dict[str, Visit]
    #: The URL the first search result for ``rotate_many`` opened, and its entries there.
    search_opened: str
    search_entries: int


class _Tab:
    """One browser tab loading pages one after another, each page's events its own Visit.

    A tab keeps its renderer process from page to page (a new tab per page started one for
    each: most of a load's CPU). What a page shares with the pages before it (the theme's
    stylesheets and scripts) is the same URL, and is reported again from the cache.

    Each page's search worker asks for the index at the URL the page gives it, and the site
    answers; the tab hands the worker that answer's status and headers with the index's
    configuration and no documents. Indexing every page's text again, for each of the pages,
    was a third of the browser's CPU; the search (``_search``) reads the whole index.
    """

    def __init__(self, base_url: str, empty_index: bytes) -> None:
        self.base_url = base_url
        self.empty_index = empty_index
        self.visit = Visit()
        self.last: dict[str, asyncio.Event] = {}
        #: The page each request was made for: one the next page cut off is that page's.
        self.made_for: dict[Request, Visit] = {}

    async def open(self, context: BrowserContext) -> None:
        self.page = page = await context.new_page()
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.visit.problems.append(f"page error: {error}"))
        page.on("request", self._outside)
        page.on("response", self._status)
        page.on("requestfailed", self._failed)
        page.on("requestfinished", self._done)
        await page.route(f"{self.base_url}/{LAST_REQUESTS[0]}", self._index)

    async def _index(self, route: Route) -> None:
        answer = await route.fetch()
        await route.fulfill(response=answer, body=self.empty_index)

    def _outside(self, request: Request) -> None:
        self.made_for[request] = self.visit
        if not request.url.startswith((self.base_url, "data:", "blob:")):
            self.visit.problems.append(f"outside request: {request.url}")

    def _status(self, response: Response) -> None:
        if response.status >= 400:
            self.visit.problems.append(f"{response.status}: {response.url}")

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.visit.problems.append(message.text)

    def _failed(self, request: Request) -> None:
        self.made_for.get(request, self.visit).problems.append(f"failed: {request.url}")
        self._done(request)

    def _done(self, request: Request) -> None:
        event = self.last.get(request.url)
        if event is not None:
            event.set()

    async def load(self, path: str) -> Visit:
        """Load one page, and wait until it has made its last requests: the search worker's
        index, then the favicon (the browser asks for it once the page stopped loading).
        Waiting for ``networkidle`` (500 ms without a request) as well found nothing more and
        cost half a second a page; a request still running when the next page starts is cut
        off, and reported as failed in the visit it was made for."""
        self.visit = visit = Visit()
        self.last = {self.base_url + f"/{last}": asyncio.Event() for last in LAST_REQUESTS}
        await self.page.goto(self.base_url + path, wait_until="load", timeout=120_000)
        async with asyncio.timeout(120):
            for event in self.last.values():
                await event.wait()
        hrefs = await self.page.eval_on_selector_all(
            "nav.md-nav--primary a.md-nav__link[href]", "links => links.map(a => a.href)"
        )
        visit.nav_links = {urldefrag(href).url.removeprefix(self.base_url) for href in hrefs}
        return visit


async def _search(context: BrowserContext, base_url: str, query: str) -> tuple[str, int]:
    page = await context.new_page()
    await page.goto(base_url + "/guides/testing/", wait_until="networkidle", timeout=120_000)
    await page.locator("input.md-search__input").click()
    # Typed only once the index is ready: Material reads keystrokes, not a filled-in value.
    meta = page.locator(".md-search-result__meta")
    await expect(meta).to_have_text("Type to start searching", timeout=120_000)
    await page.locator("input.md-search__input").press_sequentially(query, delay=20)
    first = page.locator(".md-search-result__item a").first
    await first.wait_for(timeout=120_000)
    await first.click()
    await page.wait_for_load_state("load")
    entries = await page.locator('[id="cldprov_async.AccessKeysAPI.rotate_many"]').count()
    opened = page.url
    await page.close()
    return opened, entries


async def _browse(base_url: str, paths: list[str], empty_index: bytes) -> Browsing:
    """Load every page (in a few tabs at a time: part of a load is waiting) and search once."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            context = await browser.new_context()
            visits: dict[str, Visit] = {}
            todo = iter(paths)

            async def tab() -> None:
                loader = _Tab(base_url, empty_index)
                await loader.open(context)
                for path in todo:  # shared: each tab takes the next page not yet loaded
                    visits[path] = await loader.load(path)
                await loader.page.close()

            search = asyncio.ensure_future(_search(context, base_url, "rotate_many"))
            await asyncio.gather(search, *(tab() for _ in range(TABS)))
            opened, entries = search.result()
        finally:
            await browser.close()
    return Browsing({path: visits[path] for path in paths}, opened, entries)


@pytest.fixture(scope="module")
def browsing(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Browsing:
    """The browser's findings, once per test run (a record in the run's directory)."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} missing: apt-get install chromium (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    record = shared_dir(tmp_path_factory) / "docs-browsing.json"
    with only_one_at_a_time(record):
        if not record.exists():
            # In a process of its own at a lower priority (``heavy``): the browser's load.
            command = lowered([sys.executable, __file__, str(site), str(record)])
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(record.read_text())
    visits = {path: Visit(v["problems"], set(v["nav_links"])) for path, v in data["visits"].items()}
    return Browsing(visits, data["search_opened"], data["search_entries"])


def test_every_page_loads_cleanly_and_only_from_this_site(browsing: Browsing, site: Path) -> None:
    assert set(browsing.visits) == set(page_paths(site))
    assert len(browsing.visits) >= len(NAV_PAGES), sorted(browsing.visits)
    problems = {path: v.problems for path, v in browsing.visits.items() if v.problems}
    assert not problems


def test_every_page_is_reachable_through_the_navigation(browsing: Browsing) -> None:
    visits = browsing.visits
    reached, todo = {"/"}, ["/"]
    while todo:
        for link in visits[todo.pop()].nav_links:
            if link in visits and link not in reached:
                reached.add(link)
                todo.append(link)
    assert reached == set(visits), sorted(set(visits) - reached)


def test_search_finds_rotate_many_and_opens_its_api_entry(browsing: Browsing) -> None:
    assert urljoin(browsing.search_opened, ".").endswith("/reference/cldprov_async/")
    assert browsing.search_entries == 1, browsing.search_opened


def browse_to(site: Path, record: Path) -> None:
    """Serve ``site``, browse it, and write what was found to ``record``."""
    index = json.loads((site / LAST_REQUESTS[0]).read_text(encoding="utf-8"))
    empty_index = json.dumps({"config": index["config"], "docs": []}).encode()
    with serving(site) as base_url:
        found = asyncio.run(_browse(base_url, page_paths(site), empty_index))
    record.write_text(json.dumps(dataclasses.asdict(found), default=sorted))


if __name__ == "__main__":
    lower_this_process()
    browse_to(Path(sys.argv[1]), Path(sys.argv[2]))
