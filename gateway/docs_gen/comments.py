"""A field's description: its `Field(description=...)`, else its docstring-style comment.

The configuration classes document most fields with a comment on the field's own line or on
the comment lines right above it; both count as its description, so a reference page can be
made from them without copying text by hand."""

import inspect
import io
import keyword
import re
import tokenize
from functools import cache

_FIELD = re.compile(r"^    ([A-Za-z_][A-Za-z0-9_]*)\s*:")  # class-body level


@cache
def field_comments(cls: type) -> dict[str, str]:
    """Field name -> the comment on its line (or the comment block right above it)."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    lines = source.splitlines()
    trailing: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            trailing[tok.start[0]] = tok.string.lstrip("#").strip()
    found: dict[str, str] = {}
    above: list[str] = []
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(trailing.get(number, ""))
            continue
        match = _FIELD.match(line)
        if match and not keyword.iskeyword(match.group(1)):
            own = trailing.get(number)
            parts = [*above, own] if own else above
            text = " ".join(p for p in parts if p and p != "fmt: skip")
            if text:
                found.setdefault(match.group(1), text)
        above = []
    return found
