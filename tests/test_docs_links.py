"""Every relative link in every tracked Markdown file points at a file that exists, and every
anchor (``file.md#heading`` or ``#heading``) at a heading of that file, by GitHub's slug rule."""

from __future__ import annotations

import re
import subprocess
import unicodedata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")  # [text](target "title")
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def tracked_markdown() -> list[Path]:
    """The *.md files git tracks (a clone holds exactly these)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "*.md"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: every *.md
        return sorted(p for p in REPO.rglob("*.md") if ".venv" not in p.parts)
    return [REPO / name for name in listed]


def github_slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, markup and punctuation dropped (letters,
    digits, '-', '_' and spaces kept), spaces to '-'."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)  # inline code keeps its text
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = unicodedata.normalize("NFC", text).lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The heading anchors of a Markdown file, with GitHub's -1, -2 suffixes for repeats."""
    seen: dict[str, int] = {}
    result = set()
    in_fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        match = HEADING.match(line)
        if in_fence or not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link and image outside code fences."""
    found = []
    in_fence = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        line = re.sub(r"`[^`]*`", "", line)  # inline code is not a link
        found += [(number, target) for target in LINK.findall(line) + IMAGE.findall(line)]
    return found


def broken_links(path: Path, root: Path = REPO) -> list[str]:
    """One line per link of ``path`` whose file or anchor does not exist."""
    problems = []
    for number, target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(root)}:{number}: {target}"
        if not destination.exists():
            problems.append(f"{where}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            problems.append(f"{where}: no heading with anchor #{anchor}")
    return problems


def test_slugs_follow_github():
    assert github_slug("Exit codes and errors") == "exit-codes-and-errors"
    assert (
        github_slug("Speed on CPU: ONNX Runtime vs PyTorch")
        == "speed-on-cpu-onnx-runtime-vs-pytorch"
    )
    assert github_slug("Web page (`app.py`)") == "web-page-apppy"
    assert github_slug("σ 15/25/50") == "σ-152550"


def test_checker_finds_a_broken_link(tmp_path):
    page = tmp_path / "a.md"
    page.write_text("# Top\n\n[ok](#top) [bad](#nowhere) [gone](b.md) `[code](x.md)`\n")
    assert [p.split(": ", 1)[1] for p in broken_links(page, tmp_path)] == [
        "#nowhere: no heading with anchor #nowhere",
        "b.md: no such file",
    ]


@pytest.mark.parametrize("path", tracked_markdown(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(path):
    assert broken_links(path) == []
