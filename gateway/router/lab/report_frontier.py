"""`frugal router report`: the savings page. For labelled conversations it draws quality
retained (relative to sending everything to the large tier) against the share of large calls
and against dollars, for random routing, the shipped router, an adapted router (an artifact
path), the cascade (the verifier on the small answer) and the hybrid (the router skips the
small call for its top share, the verifier checks the rest); the configured thresholds' points
are marked; bands are 95% bootstrap CIs. One sentence on top names the cheapest configuration
that keeps 95% of all-large quality and its cost relative to all-large.

Input: the router's user-log JSONL (`acceptable` required; the small answer as
`answers.small` or `answer` for the cascade and hybrid; `cost` optional, else priced from
tokens as in `verifier_data.PRICES`). matplotlib comes with the `report` extra.
"""

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.router.lab.metrics import Outcomes, quality_curve
from gateway.router.lab.verifier_data import AnswerRow, small_answer
from gateway.router.lab.verifier_train import PAYS, cost_curve, hybrid_scores

F64 = npt.NDArray[np.float64]
FLOOR = 0.95
LABELS = {"random": "random", "router": "shipped router", "adapted": "adapted router",
          "cascade": "cascade (verifier)", "hybrid": "hybrid (router + verifier)",
          "mix": "mix (router and verifier scores)"}  # fmt: skip
COLOURS = {"random": "#999999", "router": "#1f77b4", "adapted": "#9467bd",
           "cascade": "#d62728", "hybrid": "#2ca02c", "mix": "#ff7f0e"}  # fmt: skip


@dataclass
class Scheme:
    name: str  # a key of LABELS
    scores: F64  # rank: the highest go to the large tier
    threshold_share: float | None = None  # the configured threshold's large share
    label: str = ""  # the legend's name, when not LABELS[name]


@dataclass(frozen=True, slots=True)
class Curve:
    share: F64  # large-call share, k / n
    retained: F64  # quality(k) / all-large quality
    usd_per_1k: F64
    lo: F64  # bootstrap 2.5% of `retained`
    hi: F64


def curve(scheme: Scheme, out: Outcomes, n_boot: int, seed: int = 0) -> Curve:
    n = len(out.q_small)
    top = float(out.q_large.mean()) or 1.0
    if scheme.name == "random":
        q = float(out.q_small.mean()) + np.linspace(0, 1, n + 1) * (top - float(out.q_small.mean()))
        assert out.cost_small is not None and out.cost_large is not None
        cost = out.cost_small.sum() + np.linspace(0, 1, n + 1) * (
            out.cost_large.sum() - out.cost_small.sum()
        )
    else:
        q = quality_curve(scheme.scores, out)
        cost = cost_curve(scheme.scores, out, PAYS.get(scheme.name, PAYS["prompt"]))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot if scheme.name != "random" else 0):
        idx = rng.integers(0, n, size=n)
        sub = out.take(idx)
        boots.append(quality_curve(scheme.scores[idx], sub) / max(float(sub.q_large.mean()), 1e-9))
    retained = q / top
    lo, hi = np.percentile(boots, [2.5, 97.5], axis=0) if boots else (retained, retained)
    share = np.arange(n + 1) / n
    return Curve(share, retained, 1000.0 * np.asarray(cost) / n, lo, hi)


def cheapest(curves: Mapping[str, Curve], all_large_usd: float) -> str:
    """The sentence on top: the cheapest point of any scheme that keeps FLOOR of all-large."""
    best: tuple[float, str, float] | None = None
    for name, c in curves.items():
        ok = np.flatnonzero(c.retained >= FLOOR - 1e-12)
        if len(ok):
            i = ok[np.argmin(c.usd_per_1k[ok])]
            if best is None or c.usd_per_1k[i] < best[0]:
                best = (float(c.usd_per_1k[i]), name, float(c.share[i]))
    if best is None:
        return f"No configuration keeps {FLOOR:.0%} of all-large quality on these rows."
    usd, name, share = best
    return (f"The cheapest configuration that keeps {FLOOR:.0%} of all-large quality is the "
            f"{LABELS[name]} with {share:.0%} of requests answered by the large tier: "
            f"${usd:.2f} per 1,000 requests, {usd / all_large_usd:.0%} of all-large "
            f"(${all_large_usd:.2f}).")  # fmt: skip


def threshold_share(scores: F64, threshold: float) -> float:
    return float((scores >= threshold).mean())


def draw(
    schemes: Sequence[Scheme], out: Outcomes, png: Path | None, html_path: Path | None,
    title: str = "", n_boot: int = 200,
) -> str:  # fmt: skip
    """Render the page; returns the sentence on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {s.name: curve(s, out, n_boot) for s in schemes}
    assert out.cost_large is not None
    all_large = 1000.0 * float(out.cost_large.mean())
    sentence = cheapest(curves, all_large)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), dpi=80)
    for s in schemes:
        c = curves[s.name]
        style = {"color": COLOURS[s.name], "lw": 1.6, "label": s.label or LABELS[s.name]}
        if s.name == "random":
            style.update(ls="--", lw=1.0)
        for ax, x in ((axes[0], c.share), (axes[1], c.usd_per_1k)):
            ax.plot(x, c.retained, **style)
            if s.name != "random":
                ax.fill_between(x, c.lo, c.hi, color=COLOURS[s.name], alpha=0.12, lw=0)
        if s.threshold_share is not None:
            k = round(s.threshold_share * (len(c.share) - 1))
            for ax, x in ((axes[0], c.share[k]), (axes[1], c.usd_per_1k[k])):
                ax.plot([x], [c.retained[k]], marker="o", ms=7, mfc="white",
                        mec=COLOURS[s.name], mew=2)  # fmt: skip
    for ax, label in ((axes[0], "share of requests answered by the large tier"),
                      (axes[1], "USD per 1,000 requests")):  # fmt: skip
        ax.axhline(FLOOR, color="#555555", lw=0.8, ls=":")
        ax.set_xlabel(label)
        ax.set_ylabel("quality retained (all-large = 1)")
        ax.grid(alpha=0.3)
    axes[1].axvline(all_large, color="#555555", lw=0.8, ls=":")
    axes[0].legend(fontsize=8, loc="lower right")
    heading = (title + "\n" if title else "") + _wrap(sentence)
    fig.suptitle(heading.replace("$", r"\$"), fontsize=9)  # no mathtext
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    if png is not None:
        png.write_bytes(buffer.getvalue())
    if html_path is not None:
        html_path.write_text(_html(sentence, title, buffer.getvalue(), curves, all_large))
    return sentence


def _wrap(text: str, width: int = 120) -> str:
    words, lines, line = text.split(), [], ""
    for w in words:
        if len(line) + len(w) + 1 > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return "\n".join([*lines, line])


def _html(
    sentence: str, title: str, png: bytes, curves: Mapping[str, Curve], all_large: float
) -> str:
    rows = []
    for name, c in curves.items():
        ok = np.flatnonzero(c.retained >= FLOOR - 1e-12)
        if len(ok):
            i = ok[np.argmin(c.usd_per_1k[ok])]
            rows.append(f"<tr><td>{LABELS[name]}</td><td>{c.share[i]:.1%}</td>"
                        f"<td>${c.usd_per_1k[i]:.2f}</td><td>{c.usd_per_1k[i] / all_large:.0%}"
                        "</td></tr>")  # fmt: skip
    data = base64.b64encode(png).decode()
    return (f"<!doctype html><meta charset=utf-8><title>Frugal savings report</title>"
            f"<h1>{html.escape(title or 'Frugal savings report')}</h1>"
            f"<p><b>{html.escape(sentence)}</b></p><img src='data:image/png;base64,{data}'>"
            f"<table border=1 cellpadding=4><tr><th>scheme</th><th>large share at 95%</th>"
            f"<th>USD / 1k</th><th>vs all-large</th></tr>{''.join(rows)}</table>\n")  # fmt: skip


def read_rows(path: Path) -> tuple[list[AnswerRow | None], list[dict[str, Any]], Outcomes]:
    """(answer rows where the line has a small answer, records, outcomes with costs)."""
    from gateway.router.lab.examples import parse_log_record
    from gateway.router.lab.verifier_data import _priced

    rows: list[AnswerRow | None] = []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        record = json.loads(line)
        e = parse_log_record(record, f"{path}:{number}")
        answer = small_answer(record)
        if e.cost_small is None or e.cost_large is None:
            prompt = "\n".join(str(m.get("content") or "") for m in e.messages)
            large = (record.get("answers") or {}).get("large") or answer or ""
            e = _priced(e, prompt, answer or "", str(large))
        rows.append(None if answer is None else AnswerRow(e, answer, record.get("logprobs")))
        records.append({**record, "_example": e})
    ex = [r["_example"] for r in records]
    out = Outcomes(np.array([e.q_small for e in ex]), np.array([e.q_large for e in ex]),
                   np.array([e.cost_small for e in ex], dtype=np.float64),
                   np.array([e.cost_large for e in ex], dtype=np.float64))  # fmt: skip
    return rows, records, out


def schemes_from_artifacts(
    rows: Sequence[AnswerRow | None], records: Sequence[dict[str, Any]], router: str,
    adapted: str | None, verifier: str, router_threshold: float | None,
    verifier_threshold: float | None, skip: float,
) -> list[Scheme]:  # fmt: skip
    """Score the rows with the shipped router, an adapted one and the verifier."""
    from gateway.router.loading import default_threshold, load_scorer
    from gateway.router.verifier import load_verifier

    def route_scores(name: str) -> F64:
        scorer = load_scorer(name)
        pairs = [(r["_example"].messages, bool(r.get("tools"))) for r in records]
        many = getattr(scorer, "score_many", None)
        values = many(pairs) if many else [scorer.score(m, t) for m, t in pairs]
        return np.asarray(values, dtype=np.float64)

    n = len(records)
    out = [Scheme("random", np.zeros(n))]
    prompt = route_scores(router)
    thr = router_threshold if router_threshold is not None else _default(router, default_threshold)
    out.append(Scheme("router", prompt, threshold_share(prompt, thr)))
    if adapted:
        s = route_scores(adapted)
        out.append(Scheme("adapted", s, threshold_share(s, _default(adapted, default_threshold))))
    if rows and all(r is not None for r in rows):
        v = load_verifier(verifier)
        scores = np.array([v.score(r.example.messages, r.answer, r.logprobs) for r in rows
                           if r is not None])  # fmt: skip
        vt = verifier_threshold if verifier_threshold is not None else v.model.threshold
        out.append(Scheme("cascade", scores, threshold_share(scores, vt)))
        mask = np.ones(n, dtype=bool)
        hybrid = hybrid_scores(prompt, scores, mask, skip)
        out.append(Scheme("hybrid", hybrid, threshold_share(hybrid, vt)))
    return out


def _default(name: str, fn: Any) -> float:
    try:
        return float(fn(name))
    except (FileNotFoundError, ValueError, KeyError):
        return 0.5


def draw_out_of_fold(
    mx: Any, oof: Mapping[str, F64], name: str, png: Path, threshold: float
) -> str:
    """The page for one public set from out-of-fold scores (`verifier_train`): the prompt-only
    router on the same folds stands in for the shipped one (which was trained on these rows);
    the verifier's recorded `threshold` is marked."""
    mask = mx.sets == name
    out = mx.outcomes(mask)
    cascade, hybrid = oof["cascade"][mask], oof["hybrid"][mask]
    schemes = [Scheme("random", np.zeros(int(mask.sum()))),
               Scheme("router", oof["prompt"][mask], label="prompt-only router"),
               Scheme("cascade", cascade, threshold_share(cascade, threshold)),
               Scheme("hybrid", hybrid, threshold_share(hybrid, threshold))]  # fmt: skip
    if "mix" in oof:  # the lab's mix; the served one (cascade.mix) has its own threshold
        schemes.append(Scheme("mix", oof["mix"][mask]))
    title = (f"{name}, {int(mask.sum())} prompts, Mixtral-8x7B -> GPT-4: out-of-fold scores "
             "(router = prompt-only on the same folds)")  # fmt: skip
    return draw(schemes, out, png, None, title, n_boot=200)
