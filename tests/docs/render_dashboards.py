"""Render each Grafana dashboard in grafana/dashboards/ to a PNG, from real data.

    .venv/bin/python -m tests.docs.render_dashboards [--minutes 3] [--out docs/images]

It starts a real Redis, a fake OpenAI upstream, `frugal serve --workers 2` with three teams and
their budgets, and Debian's Prometheus scraping the gateway every second (the same stack as
tests/telemetry/test_dashboards_prometheus.py); sends a few minutes of mixed traffic (routed,
pinned, cached, streamed, failing and refused requests); then evaluates every panel's PromQL
through Prometheus' HTTP API and draws the panels with matplotlib on the dashboard's own grid,
and keeps `frugal report --team research` for the same traffic.
It is a picture of what the dashboards show, not a Grafana screenshot: colours, fonts and units
are matplotlib's. Every process it starts is stopped at the end."""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import yaml

from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import ROOT, RedisServer
from tests.telemetry.promserver import Prometheus
from tests.telemetry.support import (
    ADMIN_KEY,
    UPSTREAM_KEY_ENV,
    chat,
    config,
    serve,
    write_policies,
)

HIDDEN = {"__name__", "instance", "job"}  # labels Prometheus adds, not the panel's
PROMPTS = ["Say hello", "Name a colour", "Write a Python function that parses ISO dates and "
           "explain step by step why each branch is needed, then prove it terminates."]  # fmt: skip


def traffic(url: str, keys: dict[str, str], seconds: float) -> int:
    """Mixed requests until `seconds` have passed; returns how many were sent."""
    rng = random.Random(7)
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        team = rng.choice(["research", "research", "support", "broke"])
        model = rng.choice(["auto", "auto", "auto", "always-large", "small-a", "deadfirst"])
        fresh = rng.random() < 0.6  # else a repeat: a cache hit
        text = f"{rng.choice(PROMPTS)} #{n if fresh else 0}"
        chat(url, keys[team], model, content=text, stream=rng.random() < 0.3)
        n += 1
        time.sleep(rng.uniform(0.05, 0.4))
    return n


def range_query(prom: Prometheus, expr: str, start: float, end: float) -> list[dict[str, Any]]:
    params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": "5"}
    data = urllib.parse.urlencode(params).encode()
    with urllib.request.urlopen(f"{prom.url}/api/v1/query_range", data=data, timeout=30) as r:
        result: list[dict[str, Any]] = json.loads(r.read())["data"]["result"]
    return result


def legend(fmt: str | None, metric: dict[str, str]) -> str:
    text = fmt or ",".join(f"{k}={v}" for k, v in metric.items() if k != "__name__")
    for k, v in metric.items():
        text = text.replace("{{" + k + "}}", v)
    return text or "value"


def substitute(expr: str, window_s: int) -> str:
    values = {"$__rate_interval": "30s", "$__interval": "30s", "$__range": f"{window_s}s",
              "${team}": ".*", "$team": ".*"}  # fmt: skip
    for var, value in values.items():
        expr = expr.replace(var, value)
    return expr


def draw(ax: Any, panel: dict[str, Any], prom: Prometheus, start: float, end: float) -> None:
    kind, title = panel.get("type"), panel.get("title", "")
    ax.set_title(title, fontsize=8, loc="left")
    ax.tick_params(labelsize=6)
    targets = [t for t in panel.get("targets", []) if "expr" in t]
    window = int(end - start)
    if kind == "text":
        ax.axis("off")
        body = panel.get("options", {}).get("content", "")
        ax.text(0, 1, "\n".join(body.splitlines()[:8])[:400], fontsize=5, va="top", wrap=True)
        return
    if kind == "timeseries":
        for t in targets:
            for r in range_query(prom, substitute(t["expr"], window), start, end):
                xs = [(float(x) - start) / 60 for x, _ in r["values"]]
                ax.plot(xs, [float(v) for _, v in r["values"]], lw=1,
                        label=legend(t.get("legendFormat"), r["metric"]))  # fmt: skip
        ax.set_xlabel("minutes", fontsize=6)
        if ax.lines:
            ax.legend(fontsize=5, loc="upper left")
        return
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
    if kind == "table":
        ax.axis("off")
        table: dict[str, list[str]] = {}
        for i, t in enumerate(targets):
            for r in prom.query(substitute(t["expr"], window), end):
                shown = sorted((k, v) for k, v in r["metric"].items() if k not in HIDDEN)
                name = ", ".join(v for _, v in shown)
                table.setdefault(name, ["-"] * len(targets))[i] = fmt(float(r["value"][1]), unit)
        cells = [[k, *v] for k, v in table.items() if any(x not in ("-", "0") for x in v)][:12]
        if cells:
            heads = ["", *(t.get("legendFormat") or t.get("refId", "") for t in targets)]
            tab = ax.table(cellText=cells, colLabels=heads, loc="upper center")
            tab.auto_set_font_size(False)
            tab.set_fontsize(6)
        return
    rows = [(legend(t.get("legendFormat"), r["metric"]), float(r["value"][1]))
            for t in targets for r in prom.query(substitute(t["expr"], window), end)]  # fmt: skip
    rows = [(k, v) for k, v in rows if v == v and abs(v) != float("inf")]
    if kind == "stat":
        ax.axis("off")
        value = fmt(rows[0][1], unit) if rows else "no data"
        ax.text(0.5, 0.4, value, fontsize=16, ha="center", va="center")
    else:  # bargauge, piechart: one bar per series, labelled inside
        ax.barh(range(len(rows)), [v for _, v in rows], color="#7eb26d")
        ax.set_yticks([])
        for i, (k, v) in enumerate(rows):
            ax.text(0, i, f" {k}: {fmt(v, unit)}", va="center", fontsize=6)


def fmt(value: float, unit: str) -> str:
    if 1e12 < value < 1e14:  # a time in milliseconds (run-out and reset columns)
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(value / 1000))
    if unit == "currencyUSD":
        return f"${value:,.4f}"
    if unit == "percentunit":
        return f"{value:.1%}"
    return f"{value:,.4g}"


def render(dashboard: Path, prom: Prometheus, start: float, end: float, out: Path) -> Path:
    d = json.loads(dashboard.read_text())
    panels = [p for p in d["panels"] if p.get("type") != "row"]
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    fig = plt.figure(figsize=(16, height * 0.32))
    fig.suptitle(f"{d['title']} (rendered from Prometheus; team = All)", fontsize=11)
    for p in panels:
        g = p["gridPos"]
        top, tall = 0.95, 0.95 / height  # the figure's title above the grid
        left, bottom = g["x"] / 24 + 0.01, top - (g["y"] + g["h"] - 0.4) * tall
        ax = fig.add_axes((left, bottom, g["w"] / 24 - 0.03, (g["h"] - 1.2) * tall))
        draw(ax, p, prom, start, end)
    path = out / f"dashboard-{dashboard.stem.removeprefix('frugal-')}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # still stop what was started
    tmp = Path(tempfile.mkdtemp(prefix="frugal-render-"))
    fake, redis_server = FakeOpenAI(api_key="sk-upstream").start(), RedisServer().start()
    gateway = prom = None
    try:
        keys = write_policies(tmp / "policies")
        cfg = config(fake.url, policies_dir=str(tmp / "policies"), redis_url=redis_server.url)
        (tmp / "frugal.yaml").write_text(yaml.safe_dump(cfg))
        env = {UPSTREAM_KEY_ENV: "sk-upstream", "FRUGAL_ADMIN_KEY": ADMIN_KEY,
               "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics")}  # fmt: skip
        gateway, base = serve(tmp / "frugal.yaml", workers=2, env=env)
        prom = Prometheus(base.removeprefix("http://"), ADMIN_KEY).wait_ready()
        prom.wait_scrapes(2)
        start = time.time()
        sent = traffic(base, keys, args.minutes * 60)
        end = prom.wait_scrapes(2)
        print(f"{sent} requests in {args.minutes:g} min")
        for dash in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
            print("wrote", render(dash, prom, start, end, args.out))
        report = [str(Path(sys.executable).parent / "frugal"), "report", "--team", "research",
                  "--period", "month", "--url", base]  # fmt: skip
        out = subprocess.run(report, env={**os.environ, **env}, capture_output=True, text=True)
        (args.out / "report-research.txt").write_text(out.stdout)
        print("wrote", args.out / "report-research.txt")
    finally:
        if prom is not None:
            prom.stop()
        if gateway is not None:
            gateway.stop()
        redis_server.stop()
        fake.stop()


if __name__ == "__main__":
    main()
