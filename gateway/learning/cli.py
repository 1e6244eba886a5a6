"""`frugal router labels export | label | shadow | promote | rollback` (registered by the router's
CLI). `label` (offline labelling) lives in gateway/router/lab/label.py; the others talk to the
store (export) or to a running gateway's admin API (shadow, promote, rollback)."""

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson

from gateway.config import ConfigError, load_settings


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    labels = sub.add_parser("labels", help="labels collected from live traffic")
    lsub = labels.add_subparsers(dest="labels_command", required=True)
    export = lsub.add_parser("export", help="write stored labels in the user-log format")
    export.add_argument("--config", type=Path, default=None, help="gateway configuration")
    export.add_argument("--output", type=Path, required=True, help="JSONL file to write")
    export.add_argument("--route", default=None, help="only this route's labels")
    export.add_argument("--team", default=None, help="only this team's labels")
    export.add_argument("--raw", action="store_true", help="whole records, not user-log lines")
    export.add_argument(
        "--gateway", default=None, help="read them from this gateway's admin API (in-process store)"
    )
    export.set_defaults(fn=_run, handler=export_cmd)

    label = sub.add_parser("label", help="label past prompts offline: both tiers + the judge")
    label.add_argument("--config", type=Path, required=True, help="gateway configuration")
    label.add_argument("--route", default="auto", help="the route whose two tiers answer")
    label.add_argument("--input", type=Path, required=True, help="JSONL: {id, messages|prompt}")
    label.add_argument("--output", type=Path, required=True, help="JSONL, appended (resumable)")
    label.add_argument("--judge", default=None, help="judge model (default: route's learning)")
    label.add_argument("--sample", type=int, default=None, help="label at most N prompts")
    label.add_argument("--seed", type=int, default=0, help="for --sample")
    label.add_argument("--concurrency", type=int, default=4, help="prompts labelled at once")
    label.add_argument("--max-output-tokens", type=int, default=512,
                       help="output cap sent with each answer call")  # fmt: skip
    label.add_argument("--expected-output-tokens", type=int, default=256,
                       help="output tokens per answer assumed by the estimate")  # fmt: skip
    label.add_argument("--yes", action="store_true", help="start without asking")
    label.set_defaults(fn=_run, handler=label_cmd)

    for name, text in (("shadow", "run a router in shadow on a live gateway"),
                       ("promote", "make a route's shadow router live (no restart)"),
                       ("rollback", "restore the route's previous live router")):  # fmt: skip
        p = sub.add_parser(name, help=text)
        if name != "rollback":
            p.add_argument("name", nargs="?" if name == "promote" else None,
                           help="artifact name or path (promote: default the shadow)")  # fmt: skip
            p.add_argument("--threshold", type=float, default=None,
                           help="the threshold to use with it (default: the live one)")  # fmt: skip
        if name == "promote":
            p.add_argument("--force", action="store_true", help="even if not run in shadow")
        p.add_argument("--route", default="auto", help="the route to switch")
        p.add_argument("--gateway", default="http://127.0.0.1:8080", help="the gateway's base URL")
        p.add_argument("--admin-key-env", default="FRUGAL_ADMIN_KEY",
                       help="environment variable holding the admin key")  # fmt: skip
        p.set_defaults(fn=_run, handler=_switch_cmd, action=name)


def _run(args: argparse.Namespace) -> int:
    try:
        code: int = args.handler(args)
    except (ValueError, FileNotFoundError, ConfigError, httpx.HTTPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code


def _admin(args: argparse.Namespace, method: str, path: str, body: Any = None) -> httpx.Response:
    env = getattr(args, "admin_key_env", "FRUGAL_ADMIN_KEY")
    key = os.environ.get(env)
    if not key:
        raise ValueError(f"set {env} to the gateway's admin key")
    headers = {"authorization": f"Bearer {key}"}
    url = args.gateway.rstrip("/") + path
    resp = httpx.request(method, url, headers=headers, json=body, timeout=60)
    if resp.status_code != 200:
        try:
            msg = resp.json()["error"]["message"]
        except Exception:
            msg = resp.text[:300]
        raise ValueError(f"{path}: HTTP {resp.status_code}: {msg}")
    return resp


def _switch_cmd(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"route": args.route}
    if getattr(args, "name", None):
        body["router"] = args.name
    if getattr(args, "threshold", None) is not None:
        body["threshold"] = args.threshold
    if getattr(args, "force", False):
        body["force"] = True
    resp = _admin(args, "POST", f"/admin/router/{args.action}", body)
    state = resp.json()["routes"][args.route]
    live = state["live"]
    print(f"route {args.route}: live {live['version']} (threshold {live['threshold']:g})"
          + (f", shadow {state['shadow']['version']}" if state["shadow"] else ""))  # fmt: skip
    return 0


def export_cmd(args: argparse.Namespace) -> int:
    from gateway.learning.labels import Labels, export_lines
    from gateway.store import open_store

    if args.gateway:
        params = {k: v for k, v in (("route", args.route), ("team", args.team)) if v}
        params["format"] = "raw" if args.raw else "jsonl"
        resp = _admin(args, "GET", f"/admin/learning/labels?{httpx.QueryParams(params)}")
        args.output.write_bytes(resp.content)
        lines = resp.content.count(b"\n")
        print(f"wrote {lines} lines -> {args.output}", file=sys.stderr)
        return 0
    settings = load_settings(args.config)
    if not settings.redis_url:
        raise ValueError("this configuration has no redis_url: the labels live in the gateway "
                         "process; export them with --gateway URL (admin API)")  # fmt: skip

    async def read() -> list[dict[str, Any]]:
        store = open_store(settings.redis_url, timeout_s=30, options=settings.store)
        try:
            return await Labels(store).all(args.team, args.route)
        finally:
            await store.close()

    labels = asyncio.run(read())
    rows, skipped = (labels, 0) if args.raw else export_lines(labels)
    with args.output.open("wb") as out:
        for row in rows:
            out.write(orjson.dumps(row) + b"\n")
    print(f"wrote {len(rows)} lines -> {args.output} ({skipped} labels without a usable "
          "verdict skipped: judge failures, unjudged pairs, feedback on large answers)",
          file=sys.stderr)  # fmt: skip
    return 0


def label_cmd(args: argparse.Namespace) -> int:
    from gateway.router.lab.label import run

    return run(args)
