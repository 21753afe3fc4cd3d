"""The documentation speaks of the project only, and its links resolve.

Guards README.md, CHANGELOG.md, docs/*.md, the Markdown reports under assets/ and the comments and string literals of
genimg/, ui/, app.py and tools/ against words about how the project is made (who ran what, tracker numbers as
targets), and checks that every relative link in README.md and docs/*.md names a file in the repository."""
from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Words about how the project is made, not about the project. Gradio's own sessions (gradio_client sessions,
# session_hash) and asyncio tasks are fine, so "session" and "task" are only caught in those phrases.
MAKING_OF = [re.compile(pattern, re.IGNORECASE) for pattern in (
    r"\blent\b",                                   # "a lent GPU", "no GPU was lent"
    r"\b(gpu|device)\s+sessions?\b",               # "the next GPU session"
    r"\bthis\s+(session|task)\b",
    r"\bthe\s+task'?s\b",                          # "the task's 15 minutes"
    r"\bother\s+developers\b",
    r"\bissues?[\s-]*#?\d+",                       # "issue 15", "issue-3 targets"
    r"\btarget\s+\d+\s+of\b",                      # "target 2 of issue 14"
    r"\b(this|last|next)\s+stop\b",                # "this stop's CI"
)]

DOCS = sorted({ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "requirements.txt", ROOT / "pyproject.toml",
               *(ROOT / "docs").glob("*.md"), *(ROOT / "assets").rglob("*.md")})
CODE = sorted({ROOT / "app.py", *(ROOT / "genimg").rglob("*.py"), *(ROOT / "ui").rglob("*.py"),
               *(ROOT / "tools").rglob("*.py")})
SHELL = sorted((ROOT / "tools").rglob("*.sh"))


def words_of_python(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every comment and string literal in a Python file."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if token.type in (tokenize.COMMENT, tokenize.STRING) or token.type == getattr(tokenize, "FSTRING_MIDDLE", -1):
            found.append((token.start[0], token.string))
    return found


def making_of_hits(lines: list[tuple[int, str]]) -> list[str]:
    return [f"{number}: {pattern.pattern} in {text.strip()[:100]!r}" for number, text in lines
            for pattern in MAKING_OF if pattern.search(text)]


@pytest.mark.parametrize("pattern, text", [
    (r"\blent\b", "no GPU was lent to this task"), (r"\bissues?[\s-]*#?\d+", "Targets (issue 15):"),
    (r"\bissues?[\s-]*#?\d+", "each issue-3 target"), (r"\b(gpu|device)\s+sessions?\b", "the next GPU session runs"),
    (r"\bother\s+developers\b", "shared with three other developers' runs"),
    (r"\btarget\s+\d+\s+of\b", "target 2 of issue 14"), (r"\b(this|last|next)\s+stop\b", "this stop's CI count")])
def test_the_patterns_catch_what_they_are_for(pattern, text):
    assert re.search(pattern, text, re.IGNORECASE)


@pytest.mark.parametrize("text", ["3 gradio_client sessions", "session_hash", "an excellent result", "silently",
                                  "gradio-app/gradio#13594", "the test session's cache", "asyncio task"])
def test_the_patterns_leave_legitimate_words_alone(text):
    assert not making_of_hits([(1, text)])


@pytest.mark.parametrize("path", DOCS + SHELL, ids=lambda path: str(path.relative_to(ROOT)))
def test_documents_speak_of_the_project_only(path):
    lines = list(enumerate(path.read_text().splitlines(), start=1))
    assert not making_of_hits(lines), f"{path.relative_to(ROOT)}: {making_of_hits(lines)}"


@pytest.mark.parametrize("path", CODE, ids=lambda path: str(path.relative_to(ROOT)))
def test_code_comments_and_strings_speak_of_the_project_only(path):
    hits = making_of_hits(words_of_python(path))
    assert not hits, f"{path.relative_to(ROOT)}: {hits}"


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def relative_links(markdown: str) -> list[str]:
    """Link targets outside code and HTML comments that point into the repository (no scheme, not a bare anchor)."""
    markdown = re.sub(r"<!--.*?-->", "", markdown, flags=re.DOTALL)
    markdown = re.sub(r"^```.*?^```", "", markdown, flags=re.DOTALL | re.MULTILINE)
    markdown = re.sub(r"`[^`\n]*`", "", markdown)
    return [target for target in LINK.findall(markdown)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) and not target.startswith("#")]


def test_the_link_finder_skips_code_comments_and_urls():
    text = ("[a](docs/a.md) ![b](assets/b.png) [c](https://x.org) [d](#top) `[e](e.md)` <!-- [f](f.md) -->\n"
            "```\n[g](g.md)\n```\n[h](docs/h.md#part)")
    assert relative_links(text) == ["docs/a.md", "assets/b.png", "docs/h.md#part"]


@pytest.mark.parametrize("path", [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))],
                         ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves(path):
    missing = [target for target in relative_links(path.read_text())
               if not (path.parent / target.split("#")[0]).resolve().exists()]
    assert not missing, f"{path.relative_to(ROOT)} links to files that do not exist: {missing}"


def test_every_genimg_setting_in_the_code_is_documented():
    code = "\n".join(path.read_text() for path in CODE + SHELL + [ROOT / "tests" / "browser.py"]
                     + sorted((ROOT / "tests").glob("test_browser*.py")))
    settings = set(re.findall(r"\bGENIMG_[A-Z0-9_]*[A-Z0-9]\b", code))
    limits = (ROOT / "docs" / "limits.md").read_text()
    assert settings and not sorted(name for name in settings if name not in limits)


def test_readme_is_a_short_product_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert "pip install -r requirements.txt && python app.py" in readme and "\npytest" in readme
    assert readme.count("| hardware, date |") == 1  # one results table


def test_the_readme_shows_every_tab():
    readme = (ROOT / "README.md").read_text()
    for tab in ("generate", "live", "img2img", "compare", "benchmark"):  # tests/test_browser*.py save them
        assert f"](assets/screenshots/{tab}.png)" in readme
        assert (ROOT / "assets" / "screenshots" / f"{tab}.png").exists()
