"""User-facing text talks about the product and its behaviour only: no work-item numbers, no
notes on how or when the work was done."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BANNED = [
    (re.compile(r"\bissues? #?\d+", re.I), "a work-item number"),
    (re.compile(r"(?<![\w/&])#\d{1,4}\b"), "a work-item number"),  # not colours, not repo#123
    (re.compile(r"\bsessions?\b", re.I), "a note on how the work was done"),
    (re.compile(r"\bwork[- ]items?\b", re.I), "a work-item reference"),
    (re.compile(r"\bthe lead\b", re.I), "a note on how the work was done"),
]


def user_facing() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "policies" / "README.md", ROOT / "deploy" / "README.md"]
    files += sorted((ROOT / "docs").rglob("*.md"))
    files += sorted((ROOT / "grafana").rglob("*.json"))
    return [f for f in files if f.exists()]


def test_the_user_facing_files_are_found() -> None:
    names = {f.relative_to(ROOT).as_posix() for f in user_facing()}
    assert {"README.md", "docs/reference/configuration.md"} <= names
    assert any(n.startswith("grafana/") for n in names)


@pytest.mark.parametrize("path", user_facing(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_internal_vocabulary(path: Path) -> None:
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        for pattern, what in BANNED:
            for m in pattern.finditer(line):
                found.append(f"{path.name}:{number}: {m.group(0)!r} ({what}): {line.strip()}")
    assert not found, "internal vocabulary in user-facing text:\n" + "\n".join(found)


def test_the_patterns_catch_what_they_should() -> None:
    caught = ["Targets (issue 7)", "as #12 asked", "in the previous session", "session 3"]
    fine = ["color #299c46", "encode/httpx#3215", "a ClientSession POST", "the tissue 7"]
    assert all(any(p.search(t) for p, _ in BANNED) for t in caught)
    assert not any(p.search(t) for t in fine for p, _ in BANNED)
