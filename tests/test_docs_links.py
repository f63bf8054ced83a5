"""Every relative link and `#anchor` in every tracked Markdown file resolves.

Targets are checked on disk (a file or a folder, relative to the linking file, or to the repo
root for `/...`); anchors against the headings of the target file, slugged as GitHub does
(lower case, punctuation other than `-` and `_` dropped, each space a `-`, repeats suffixed
`-1`, `-2`, ...), plus explicit `<a id=...>` / `<a name=...>` anchors. External links (any
`scheme:`) are not fetched. Fast, no broker: a plain read of the files.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_SKIP_DIRS = {".git", ".hatch", ".venv", "node_modules", "build", "dist"}

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
_INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+\"[^\"]*\")?\s*\)"
)
_REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_HTML_ANCHOR = re.compile(r"<a\s+[^>]*(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_files() -> list[Path]:
    """The tracked *.md files (git), else every *.md outside build and tool folders."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--", "*.md"],
            cwd=REPO,
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout.decode()
        files = [REPO / name for name in listed.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        files = [p for p in REPO.rglob("*.md") if not _SKIP_DIRS & set(p.relative_to(REPO).parts)]
    return sorted(p for p in files if p.is_file())


def _prose_lines(text: str, *, blank_code: bool = True) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks; inline code spans blanked (links in
    them are not links) unless `blank_code` is False (a heading's slug keeps their text)."""
    out: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        match = _FENCE.match(line)
        if match:
            marker = match.group(1)
            if fence is None:
                fence = marker[0] * len(marker)
                continue
            if marker.startswith(fence):
                fence = None
                continue
        if fence is None and blank_code:
            out.append((number, _INLINE_CODE.sub(lambda m: " " * len(m.group(0)), line)))
        elif fence is None:
            out.append((number, line))
    return out


def _plain(heading: str) -> str:
    """A heading's text as rendered: code, emphasis, links and HTML tags reduced to text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text)
    text = text.replace("`", "")
    return re.sub(r"(\*\*|__|\*|~~)", "", text)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading (github-slugger's rules, before de-duplication)."""
    return re.sub(r"[^\w\- ]", "", _plain(heading).strip().lower()).replace(" ", "-")


@cache
def anchors_of(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in _prose_lines(path.read_text(encoding="utf-8"), blank_code=False):
        found.update(_HTML_ANCHOR.findall(line))
        match = _HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return frozenset(found)


def links_of(path: Path) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for number, line in _prose_lines(path.read_text(encoding="utf-8")):
        targets = [m.group(1) for m in _INLINE_LINK.finditer(line)]
        ref = _REF_DEF.match(line)
        if ref:
            targets.append(ref.group(1))
        out += [(number, t.strip("<>")) for t in targets]
    return out


def broken_links(path: Path, root: Path = REPO) -> list[str]:
    problems: list[str] = []
    where = path.relative_to(root)
    for number, target in links_of(path):
        if _SCHEME.match(target):
            continue  # external: not fetched
        file_part, _, anchor = target.partition("#")
        if file_part.startswith("/"):
            resolved = root / file_part.lstrip("/")
        elif file_part:
            resolved = (path.parent / file_part).resolve()
        else:
            resolved = path
        if not resolved.exists():
            problems.append(f"{where}:{number}: {target}: no such file or folder")
            continue
        md_file = resolved.suffix == ".md" and resolved.is_file()
        if anchor and md_file and anchor not in anchors_of(resolved):
            problems.append(
                f"{where}:{number}: {target}: no heading or anchor #{anchor} in "
                f"{resolved.relative_to(root)}"
            )
    return problems


def test_the_checker_sees_the_docs() -> None:
    files = markdown_files()
    assert REPO / "README.md" in files
    assert len(files) >= 10
    assert sum(len(links_of(p)) for p in files) > 25


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        (
            "Reminder delivery: how it keeps its promise",
            "reminder-delivery-how-it-keeps-its-promise",
        ),
        ("The fence around a Slack post", "the-fence-around-a-slack-post"),
        ("`coffeebuddy.infra.kafka.provision.dlq`", "coffeebuddyinfrakafkaprovisiondlq"),
        (
            "Dead letters: `coffeebuddy.infra.kafka.provision.dlq`",
            "dead-letters-coffeebuddyinfrakafkaprovisiondlq",
        ),
        ("State, fencing, recovery and upgrade", "state-fencing-recovery-and-upgrade"),
        ("Why not `chat.scheduleMessage`?", "why-not-chatschedulemessage"),
        ("KafkaDeadLettersGrowing", "kafkadeadlettersgrowing"),
        ("A -- B & C_d", "a----b--c_d"),
        ("[Link](x.md) and **bold**", "link-and-bold"),
    ],
)
def test_github_slugs(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug


def test_broken_links_are_found(tmp_path: Path) -> None:
    """The checker itself: a missing file, a missing anchor, a repeated heading's anchor."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "b.md").write_text("# Setup\n\n## Run it\n\n## Run it\n\n## `x.y` z\n")
    (tmp_path / "a.md").write_text(
        "# Top\n\n"
        "[ok](docs/b.md#run-it) [second](docs/b.md#run-it-1) [self](#top) [dir](docs/b.md#xy-z)\n"
        "[gone](docs/c.md) [bad anchor](docs/b.md#running) [web](https://example.com/x)\n"
        "`[in code](nowhere.md)`\n\n"
        "```\n[in a block](nowhere.md)\n```\n\n"
        "[ref]: /docs/b.md#setup\n[badref]: /docs/b.md#nope\n"
    )
    assert broken_links(tmp_path / "a.md", tmp_path) == [
        "a.md:4: docs/c.md: no such file or folder",
        "a.md:4: docs/b.md#running: no heading or anchor #running in docs/b.md",
        "a.md:12: /docs/b.md#nope: no heading or anchor #nope in docs/b.md",
    ]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_and_anchor_resolves(path: Path) -> None:
    assert broken_links(path) == []
