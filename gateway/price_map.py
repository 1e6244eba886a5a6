"""Prices from litellm's bundled model price map, read offline.

The map is the JSON file shipped inside the litellm wheel
(`litellm/model_prices_and_context_window_backup.json`, USD per token). It is read directly,
without importing litellm (an import costs seconds; reading the file ~20 ms, once, and only
when a model has no `price:`). Its version is litellm's: refresh it by upgrading the pinned
litellm (`pip install -U litellm`, then the pin in pyproject.toml). litellm itself is told
to use the same bundled copy (`LITELLM_LOCAL_MODEL_COST_MAP=True`), so nothing is fetched.

`rates(key)` turns one entry into the fields of `gateway.config.Price` (USD per million
tokens, as strings for Decimal): the base rates, cache reads and writes (5 min, 1 h),
reasoning and audio where priced apart, every long-context tier (`*_above_<N>k_tokens`), and
`service_tier` multipliers and the batch discount derived from the `*_flex`, `*_priority`
and `*_batches` rates (the map's tier rates are a constant multiple of the base rates).
"""

import importlib.metadata
import importlib.util
import os
import re
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

FILE = "model_prices_and_context_window_backup.json"
_MILLION = Decimal(1_000_000)
_ABOVE = re.compile(r"^(?P<base>.+)_above_(?P<n>\d+)(?P<k>k?)_tokens$")
# map key -> Price field
_CLASSES = {
    "input_cost_per_token": "input_per_mtok",
    "output_cost_per_token": "output_per_mtok",
    "cache_read_input_token_cost": "cached_input_per_mtok",
    "cache_creation_input_token_cost": "cache_write_per_mtok",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h_per_mtok",
    "output_cost_per_reasoning_token": "reasoning_per_mtok",
    "input_cost_per_audio_token": "audio_input_per_mtok",
    "output_cost_per_audio_token": "audio_output_per_mtok",
}
_TIERS = {"flex": "_flex", "priority": "_priority"}


def path() -> Path | None:
    """The bundled map inside the installed litellm (found without importing it)."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(next(iter(spec.submodule_search_locations))) / FILE
    return p if p.is_file() else None


@lru_cache(maxsize=1)
def version() -> str:
    """`litellm <version>`, from its dist-info folder beside the package (importlib.metadata
    scans every installed distribution: ~70 ms)."""
    p = path()
    if p is not None:
        for info in sorted(p.parent.parent.glob("litellm-*.dist-info")):
            return f"litellm {info.name.removeprefix('litellm-').removesuffix('.dist-info')}"
    try:
        return f"litellm {importlib.metadata.version('litellm')}"
    except importlib.metadata.PackageNotFoundError:
        return "litellm (not installed)"


@lru_cache(maxsize=1)
def entries() -> dict[str, Any]:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm: this copy too
    p = path()
    if p is None:
        return {}
    data = orjson.loads(p.read_bytes())
    return data if isinstance(data, dict) else {}


def find(model: str) -> str | None:
    """The map key for an upstream model id: as given, else without its provider prefix
    (`anthropic/claude-sonnet-4-5` -> `claude-sonnet-4-5`). None when not priced per token."""
    table = entries()
    for key in (model, model.split("/", 1)[1] if "/" in model else None):
        entry = table.get(key) if key else None
        if isinstance(entry, dict) and isinstance(entry.get("input_cost_per_token"), int | float):
            return key
    return None


def _mtok(v: Any) -> Decimal | None:
    if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
        return None
    d = (Decimal(repr(v)) * _MILLION).normalize()
    return d.quantize(Decimal(1)) if d == d.to_integral_value() else d  # 30, not 3E+1


def rates(key: str) -> dict[str, Any]:
    """The `Price` fields for map entry `key` (which `find` returned)."""
    e = entries()[key]
    out: dict[str, Any] = {}
    for src, dst in _CLASSES.items():
        v = _mtok(e.get(src))
        if v is not None:
            out[dst] = str(v)
    out.setdefault("output_per_mtok", "0")
    tiers: dict[int, dict[str, Any]] = {}
    for k, v in e.items():
        m = _ABOVE.match(k)
        rate = _mtok(v)
        if m is None or rate is None or m["base"] not in _CLASSES:
            continue
        above = int(m["n"]) * (1000 if m["k"] else 1)
        tiers.setdefault(above, {"above_tokens": above})[_CLASSES[m["base"]]] = str(rate)
    if tiers:
        out["long_context"] = [tiers[n] for n in sorted(tiers)]
    base = _mtok(e.get("input_cost_per_token")) or Decimal(0)
    multipliers = {}
    for tier, suffix in _TIERS.items():
        v = _mtok(e.get(f"input_cost_per_token{suffix}"))
        if v is not None and base > 0:
            multipliers[tier] = str((v / base).normalize())
    if multipliers:
        out["service_tiers"] = multipliers
    batch = _mtok(e.get("input_cost_per_token_batches"))
    if batch is not None and base > 0 and batch < base:
        out["batch_discount"] = str((1 - batch / base).normalize())
    return out
