"""The `frugal` command: serve, local, keys, check-config, router."""

import argparse
import os
import signal
import sys
from pathlib import Path

from gateway.config import ConfigError, Settings, load_settings
from gateway.logs import setup_logging


def _load(path: str | None) -> Settings:
    try:
        return load_settings(Path(path) if path else None)
    except ConfigError as e:
        print(f"frugal: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def _check_egress(settings: Settings) -> None:
    """Keys, TLS files and proxies of every model, before anything starts."""
    from gateway.providers.registry import check_egress

    try:
        check_egress(settings.models)
    except ConfigError as e:
        print(f"frugal: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.local import LocalModelError, LocalServers

    if args.config:
        os.environ["FRUGAL_CONFIG"] = str(Path(args.config).resolve())
    settings = _load(args.config)
    _check_egress(settings)
    host = args.host or settings.server.host
    port = args.port if args.port is not None else settings.server.port
    local = LocalServers(settings.models, Path(".frugal/logs")) if not args.no_local else None

    def stop_on_signal(signum: int, frame: object) -> None:
        raise SystemExit(0)

    # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown; turn that into SystemExit
    # so the `finally` below stops the local model servers.
    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGINT, stop_on_signal)
    if local is not None:
        try:
            local.start()
        except LocalModelError as e:
            print(f"frugal: cannot start local models: {e}", file=sys.stderr)
            local.stop()
            return 2
    from gateway.telemetry import multiproc

    workers = args.workers or settings.server.workers
    metrics_cleanup = multiproc.prepare(workers)  # /metrics sums every worker's values
    try:
        uvicorn.run(
            "gateway.asgi:app_from_env", factory=True, host=host, port=port,
            workers=workers, log_level="warning", access_log=False,
        )  # fmt: skip
    finally:
        metrics_cleanup()
        if local is not None:
            local.stop()
    return 0


def cmd_local(args: argparse.Namespace) -> int:
    from gateway.local import LocalModelError, LocalServers

    settings = _load(args.config)
    servers = LocalServers(settings.models, Path(".frugal/logs"))
    try:
        servers.start()
    except LocalModelError as e:
        print(f"frugal: {e}", file=sys.stderr)
        servers.stop()
        return 2
    print("local models running; Ctrl-C to stop", file=sys.stderr)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        servers.stop()
    return 0


def _team_has_policy(settings: Settings, folder: Path, team: str) -> bool:
    """A key for a team without a policy gets `budget.default_policy` (by default no budget at
    all): refuse to create one unless asked to (`--allow-no-policy`)."""
    from gateway.policies import load_policies

    try:
        pol = load_policies(folder, settings.budget.timezone, settings.budget.default_policy)
    except ConfigError as e:
        print(f"frugal: {e}", file=sys.stderr)
        return False
    if team in pol.teams:
        return True
    msg = (f"frugal: team {team!r} has no policy in {folder}, so its keys would get "
           f"budget.default_policy={pol.default!r} (no budget, no limit when 'unlimited'); "
           "add the team to a policy file first, or pass --allow-no-policy")  # fmt: skip
    print(msg, file=sys.stderr)
    return False


def cmd_keys_create(args: argparse.Namespace) -> int:
    from gateway.keys import create_key

    settings = _load(args.config)
    policies = Path(args.policies) if args.policies else settings.policies_dir
    if not args.allow_no_policy and not _team_has_policy(settings, policies, args.team):
        return 2
    key = create_key(policies, args.team, args.name)
    print(key)
    print(f"(shown once; its SHA-256 is stored in {policies / 'keys.yaml'})", file=sys.stderr)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    _check_egress(settings)
    print(f"ok: {len(settings.models)} models, {len(settings.routes)} routes")
    mapped = sorted(n for n, m in settings.models.items() if m.price.source != "config")
    if mapped:  # where the others' prices come from (`frugal prices` lists them all)
        print(f"priced from the litellm map: {', '.join(mapped)}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="frugal", description="A cost-aware LLM gateway.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the gateway (and its local models)")
    s.add_argument("--config", help="YAML configuration (default: embedded defaults)")
    s.add_argument("--host", help="listen address (default: server.host)")
    s.add_argument("--port", type=int, help="listen port (default: server.port)")
    s.add_argument("--workers", type=int, help="worker processes (default: server.workers)")
    s.add_argument("--no-local", action="store_true", help="do not start local llama.cpp servers")
    s.set_defaults(fn=cmd_serve)
    loc = sub.add_parser("local", help="start and supervise the local llama.cpp model servers")
    loc.add_argument("--config", help="YAML configuration (default: embedded defaults)")
    loc.set_defaults(fn=cmd_local)
    k = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys", required=True)
    kc = k.add_parser("create", help="create a key for a team (printed once, stored hashed)")
    kc.add_argument("--team", required=True, help="the team the key belongs to")
    kc.add_argument("--name", help="a label for the key (shown in keys.yaml)")
    kc.add_argument("--config", help="YAML configuration (default: embedded defaults)")
    kc.add_argument("--policies", help="policies folder (default: the configuration's)")
    kc.add_argument(
        "--allow-no-policy",
        action="store_true",
        help="create it even if the team has no policy (budget.default_policy)",
    )
    kc.set_defaults(fn=cmd_keys_create)
    c = sub.add_parser("check-config", help="validate a configuration file")
    c.add_argument("--config", help="YAML configuration (default: embedded defaults)")
    c.set_defaults(fn=cmd_check)
    from gateway.budget.cli import register as register_spend

    register_spend(sub)  # frugal spend --team T --period month [--csv]
    from gateway.telemetry.report import register as register_report

    register_report(sub)  # frugal report --team T --period month [--png FILE]
    from gateway.prices_cli import register as register_prices

    register_prices(sub)  # frugal prices [--json]
    try:
        from gateway.router.lab.cli import register
    except ImportError:
        pass
    else:
        register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = parser().parse_args(argv)
    code: int = args.fn(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
