"""Plain-text tables of evaluation figures (the `--json` output is the raw dict)."""

from typing import Any

_COLUMNS = (
    ("apgr", "APGR", "{:.3f}"),
    ("cpt50", "CPT50", "{:.1%}"),
    ("cpt80", "CPT80", "{:.1%}"),
    ("large_share_at_95", "large@95%", "{:.1%}"),
    ("usd_per_1k_at_95", "$/1k@95%", "{:.3f}"),
)


def _router_cell(stat: dict[str, float], fmt: str) -> str:
    return f"{fmt.format(stat['value'])} [{fmt.format(stat['lo'])}, {fmt.format(stat['hi'])}]"


def format_report(report: dict[str, Any]) -> str:
    """One block per set: router (with 95% CI), random (expected) and oracle."""
    lines: list[str] = []
    for name, res in report["sets"].items():
        lines.append(
            f"{name}: n={res['n']}  q_small={res['q_small']:.3f}  q_large={res['q_large']:.3f}"
        )
        for key, title, fmt in _COLUMNS:
            if key not in res["router"]:
                continue
            router = _router_cell(res["router"][key], fmt)
            rand = fmt.format(res["random"][key])
            oracle = res["oracle"].get(key)
            oracle_text = fmt.format(oracle) if oracle is not None else "-"
            lines.append(f"  {title:<10} router {router:<30} random {rand:<9} oracle {oracle_text}")
    return "\n".join(lines)


def format_comparison(table: dict[str, dict[str, float]]) -> str:
    if not table:
        return ""
    sets = list(next(iter(table.values())))
    lines = ["spec".ljust(48) + " ".join(s[:10].rjust(10) for s in sets)]
    for spec, row in table.items():
        lines.append(spec[:48].ljust(48) + " ".join(f"{row[s]:10.3f}" for s in sets))
    return "\n".join(lines)
