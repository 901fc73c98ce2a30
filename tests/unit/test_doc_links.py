"""Every relative link and heading reference in the project's Markdown resolves.

A link to a file must name a file or folder that exists; `#heading`, in the
same page or as `other.md#heading`, must name a heading of that page, by the
anchor GitHub gives it. Web and mail links are not followed: the check reads
files only, so it is fast and needs no network.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Folders that hold no Markdown of ours: environments, caches, build output.
_SKIP_DIRS = {"node_modules", "build", "dist", "bench-results", "__pycache__"}

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX_HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target) and ![alt](target), with an optional "title"; text may hold one level of [brackets].
_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_HTML_ANCHOR = re.compile(r"<a\s+[^>]*(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def markdown_files(root: Path = ROOT) -> list[Path]:
    """Every Markdown file of the project, outside hidden folders (.venv, .git) and build output."""
    found: list[Path] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        for entry in folder.iterdir():
            if entry.is_dir():
                if not entry.name.startswith(".") and entry.name not in _SKIP_DIRS \
                        and not entry.name.endswith(".egg-info"):
                    stack.append(entry)
            elif entry.suffix == ".md":
                found.append(entry)
    return sorted(found)


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, where headings and links mean something."""
    fence = ""
    for number, line in enumerate(text.splitlines(), start=1):
        match = _FENCE.match(line)
        if fence:
            # A fence closes with the same character, at least as long, and nothing after it.
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) \
                    and not line.strip()[len(match.group(1)):].strip():
                fence = ""
            continue
        if match:
            fence = match.group(1)
            continue
        yield number, line


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text as rendered, lowercased, punctuation
    except - and _ dropped, each space a hyphen."""
    text = _CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link shows its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML shows nothing of its tags
    text = re.sub(r"\*+", "", text)  # emphasis marks
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a page offers: one per heading (repeats get -1, -2, ...) and HTML anchors."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in prose_lines(text):
        found.update(_HTML_ANCHOR.findall(line))
        match = _ATX_HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(1) or "")
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def link_targets(text: str) -> Iterator[tuple[int, str]]:
    """(line number, target) of every link and reference definition outside code."""
    for number, line in prose_lines(text):
        match = _REFERENCE_DEF.match(line)
        if match:
            yield number, match.group(1)
            continue
        for link in _INLINE_LINK.finditer(_CODE_SPAN.sub("", line)):
            yield number, link.group(1)


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """What is wrong with a page's relative links, one message each."""
    cache: dict[Path, set[str]] = {}

    def anchors_of(path: Path) -> set[str]:
        if path not in cache:
            cache[path] = anchors(path.read_text(encoding="utf-8"))
        return cache[path]

    problems = []
    for number, target in link_targets(page.read_text(encoding="utf-8")):
        if not target or _SCHEME.match(target):
            continue  # web, mail and other absolute links are not ours to check
        path_part, _, fragment = target.partition("#")
        path_part = urllib.parse.unquote(path_part)
        if not path_part:
            destination = page
        elif path_part.startswith("/"):
            destination = root / path_part.lstrip("/")
        else:
            destination = (page.parent / path_part).resolve()
        where = f"{page.relative_to(root)}:{number}: {target}"
        if not destination.exists():
            problems.append(f"{where}: no such file")
        elif fragment and destination.suffix == ".md" and fragment not in anchors_of(destination):
            problems.append(f"{where}: no heading with anchor #{fragment} in {destination.name}")
    return problems


PAGES = markdown_files()


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_and_heading_references_resolve(page: Path) -> None:
    assert broken_links(page) == []


def test_every_docs_page_is_linked_from_the_readme() -> None:
    readme = ROOT / "README.md"
    linked = {
        (ROOT / urllib.parse.unquote(target.partition("#")[0]).lstrip("/")).resolve()
        for _, target in link_targets(readme.read_text(encoding="utf-8"))
        if not _SCHEME.match(target)
    }
    pages = sorted((ROOT / "docs").rglob("*.md"))
    assert pages, "docs/ holds no pages"
    assert [str(p.relative_to(ROOT)) for p in pages if p.resolve() not in linked] == []


def test_anchors_follow_githubs_rules() -> None:
    page = "\n".join([
        "# The `swarmmesh` command",
        "## MeshService: the sidecar's stream",
        "## Eight small caches against one large one (W4)",
        "## 2026-11-24 21:48: before W3",
        "## Notes",
        "## Notes",
        "## Notes ##",
        "### snake_case and [a link](x.md) *stressed*",
    ])
    assert anchors(page) == {
        "the-swarmmesh-command",
        "meshservice-the-sidecars-stream",
        "eight-small-caches-against-one-large-one-w4",
        "2026-11-24-2148-before-w3",
        "notes",
        "notes-1",
        "notes-2",
        "snake_case-and-a-link-stressed",
    }


def test_code_is_neither_headings_nor_links() -> None:
    page = "\n".join([
        "# Real",
        "````markdown",
        "# a heading in an example",
        "[not a link](missing.md)",
        "```",
        "````",
        "~~~",
        "# still code",
        "~~~",
        "Text with `[code](missing.md)` and [a link](real.md#real).",
        "[ref]: other.md",
    ])
    assert anchors(page) == {"real"}
    assert list(link_targets(page)) == [(10, "real.md#real"), (11, "other.md")]


def test_broken_links_are_reported(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other page\n## Twice\n## Twice\n", encoding="utf-8")
    page = tmp_path / "README.md"
    page.write_text(
        "# Top\n"
        "[ok](docs/other.md#twice-1) [ok](#top) [web](https://example.com/missing) [mail](mailto:a@b.c)\n"
        "[folder](docs/) [rooted](/docs/other.md#other-page)\n"
        "[gone](docs/gone.md) [no anchor](docs/other.md#twice-2) [here](#nowhere)\n",
        encoding="utf-8",
    )
    assert broken_links(page, tmp_path) == [
        "README.md:4: docs/gone.md: no such file",
        "README.md:4: docs/other.md#twice-2: no heading with anchor #twice-2 in other.md",
        "README.md:4: #nowhere: no heading with anchor #nowhere in README.md",
    ]
