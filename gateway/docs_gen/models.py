"""The configuration reference: every key of a pydantic model tree, with its type, default,
constraints and description, one table per section."""

import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from gateway.docs_gen.comments import field_comments


@dataclass(frozen=True, slots=True)
class Row:
    section: str  # dotted path of the section, e.g. "models.<name>.timeouts"
    key: str
    type: str
    default: str
    description: str


def _args(tp: Any) -> tuple[Any, ...]:
    return typing.get_args(tp)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def type_name(tp: Any) -> str:
    """`str | None`, `list[small | medium | large]`, `"a" | "b"` ..."""
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "null"
    if _is_union(tp):
        return " | ".join(type_name(a) for a in _args(tp))
    if origin is typing.Literal:
        return " | ".join(f'"{a}"' for a in _args(tp))
    if isinstance(tp, type) and issubclass(tp, Enum):
        return " | ".join(f'"{m.value}"' for m in tp)
    if origin in (list, tuple, dict, set, frozenset):
        inner = [type_name(a) for a in _args(tp) if a is not Ellipsis]
        name = {list: "list", tuple: "list", set: "list", frozenset: "list", dict: "map"}[origin]
        return f"{name}[{', '.join(inner)}]"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "section"
    if tp is Decimal:
        return "decimal"
    if tp is Path:
        return "path"
    found = getattr(tp, "__name__", None)
    return found if isinstance(found, str) else str(tp).replace("typing.", "")


def _value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Enum):
        return str(v.value)
    if isinstance(v, BaseModel):
        return "(section)"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{}" if not v else str(v)
    if isinstance(v, Decimal):
        return f'"{v}"'
    return str(v)


def default_text(info: FieldInfo) -> str:
    if info.default_factory is not None:
        return _value(info.default_factory())  # type: ignore[call-arg]
    if info.default is PydanticUndefined:
        return "required"
    return _value(info.default)


_BOUNDS = ((at.Ge, "ge", ">="), (at.Gt, "gt", ">"), (at.Le, "le", "<="), (at.Lt, "lt", "<"))


def constraints(info: FieldInfo) -> str:
    out: list[str] = []
    for m in info.metadata:
        for cls, attr, sign in _BOUNDS:
            if isinstance(m, cls):
                out.append(f"{sign} {getattr(m, attr)}")
        if isinstance(m, at.MinLen):
            out.append(f"at least {m.min_length} item(s)")
        pattern = getattr(m, "pattern", None)
        if isinstance(pattern, str):
            out.append(f"matches `{pattern}`")
    return ", ".join(out)


def _nested(tp: Any, key: str) -> Iterator[tuple[str, type[BaseModel]]]:
    """Models reachable from a field's type, with the path suffix that leads to them."""
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        yield key, tp
    elif _is_union(tp):
        for a in _args(tp):
            yield from _nested(a, key)
    elif origin is dict:
        yield from _nested(_args(tp)[1], f"{key}.<name>")
    elif origin in (list, tuple):
        yield from _nested(_args(tp)[0], f"{key}[]")


def walk(model: type[BaseModel], section: str = "") -> Iterator[Row]:
    """Every key of `model` and the models under it, depth first, in declaration order."""
    comments: dict[str, str] = {}
    for cls in reversed(model.__mro__):  # a subclass's comment wins over its base's
        comments.update(field_comments(cls))
    children: list[tuple[str, type[BaseModel]]] = []
    for name, info in model.model_fields.items():
        text = info.description or comments.get(name, "")
        path = f"{section}.{name}" if section else name
        if not text and list(_nested(info.annotation, path)):
            text = "A section: see below."
        bounds = constraints(info)
        if bounds:
            text = f"{text} ({bounds})" if text else f"({bounds})"
        yield Row(section, name, type_name(info.annotation), default_text(info), text)
        children.extend(_nested(info.annotation, path))
    seen: set[str] = set()
    for path, child in children:
        if path not in seen:
            seen.add(path)
            yield from walk(child, path)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _doc(model: type[BaseModel]) -> str:
    doc = model.__doc__ or ""
    own = doc if doc and doc != BaseModel.__doc__ else ""
    return " ".join(own.split())


def render(model: type[BaseModel], title: str, intro: str, models: dict[str, str]) -> str:
    """One markdown page: a table per section. `models` maps a section path to the class it is
    (filled in by `sections`), so each section can show its class's docstring."""
    rows = list(walk(model))
    out = [f"# {title}", "", intro, ""]
    current: str | None = None
    for row in rows:
        if row.section != current:
            current = row.section
            heading = f"`{current}`" if current else "Top level"
            out += ["", f"## {heading}", ""]
            if models.get(current):
                out += [models[current], ""]
            out += ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
        cells = (f"`{row.key}`", _cell(row.type), f"`{_cell(row.default)}`", _cell(row.description))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out).strip() + "\n"


def section_docs(model: type[BaseModel], section: str = "") -> dict[str, str]:
    """Section path -> its class's docstring (where it has one)."""
    out = {section: _doc(model)}
    for name, info in model.model_fields.items():
        path = f"{section}.{name}" if section else name
        for sub, child in _nested(info.annotation, path):
            out.update(section_docs(child, sub))
    return out


def undocumented(model: type[BaseModel]) -> list[str]:
    """Keys without a description (neither `Field(description=...)` nor a comment)."""
    return [f"{r.section}.{r.key}".lstrip(".") for r in walk(model)
            if "section" not in r.type
            and (not r.description or r.description.startswith("("))]  # fmt: skip
