"""Every file in deploy/ and grafana/ passes its own tool's validation: `docker compose config`
(or Debian's docker-compose), `promtool check config`, the Kubernetes schemas (kubernetes-validate,
strict: unknown fields fail), and Frugal's own configuration and policy loaders. Plus what the
issue asks of the stack: the six services, N replicas sharing Redis, probes, resource requests."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.config import Settings, load_settings
from gateway.policies import load_policies
from tests.support.servers import ROOT

DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose" / "docker-compose.yml"
K8S = DEPLOY / "kubernetes"
K8S_VERSION = "1.37.0"


def compose_command() -> list[str]:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    raise RuntimeError(
        "no compose tool: install it with `apt-get install -y --no-install-recommends "
        "docker-compose` (scripts/setup --dev does)"
    )


def test_compose_file_passes_compose_config() -> None:
    run = subprocess.run([*compose_command(), "-f", str(COMPOSE), "config"],
                         capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})  # fmt: skip
    assert run.returncode == 0, run.stderr
    rendered = yaml.safe_load(run.stdout)
    services = rendered["services"]
    wanted = {"gateway", "redis", "llama", "otel-collector", "prometheus", "grafana"}
    assert wanted <= set(services)
    gateway = services["gateway"]
    assert {"redis", "llama"} <= set(gateway["depends_on"])
    assert all("healthcheck" in services[s] for s in ("redis", "llama"))
    mounts = " ".join(str(v) for s in services.values() for v in s.get("volumes", []))
    mounted = [
        "grafana/provisioning",
        "grafana/dashboards",
        "deploy/compose/frugal.yaml",
        "deploy/compose/prometheus.yml",
        "deploy/compose/otel-collector.yaml",
    ]
    for path in mounted:
        assert str(ROOT / path) in mounts, path


def test_dockerfile_passes_hadolint_and_buildkits_parser() -> None:
    import dockerfile  # BuildKit's own Dockerfile parser (PyPI `dockerfile`)

    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    run = subprocess.run([hadolint, "--no-color", str(DEPLOY / "Dockerfile")],
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    cmds = [c.cmd for c in dockerfile.parse_file(str(DEPLOY / "Dockerfile"))]
    assert cmds[0] == "FROM" and "HEALTHCHECK" in cmds and "USER" in cmds
    for copied in ("pyproject.toml", "gateway"):
        assert (ROOT / copied).exists()


def test_compose_configs_pass_their_tools() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install -y --no-install-recommends prometheus"
    # --syntax-only: the bearer-token file exists only inside the running stack.
    config = DEPLOY / "compose" / "prometheus.yml"
    run = subprocess.run([promtool, "check", "config", "--syntax-only", str(config)],
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    settings = load_settings(DEPLOY / "compose" / "frugal.yaml")
    assert settings.redis_url == "redis://redis:6379/0" and settings.server.workers >= 2
    assert settings.telemetry.otlp.endpoint == "http://otel-collector:4318"


def test_collector_pipelines_use_defined_components() -> None:
    """No otelcol binary here: check the pipelines reference components that are defined."""
    cfg = yaml.safe_load((DEPLOY / "compose" / "otel-collector.yaml").read_text())
    assert set(cfg["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    for name, pipeline in cfg["service"]["pipelines"].items():
        assert name in ("traces", "metrics")
        for kind in ("receivers", "processors", "exporters"):
            assert set(pipeline.get(kind, [])) <= set(cfg.get(kind, {})), (name, kind)


def k8s_docs() -> list[tuple[str, dict[str, Any]]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    out = []
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text()):
            out.append((name, doc))
    return out


def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


@pytest.mark.parametrize("name", sorted(p.name for p in K8S.glob("*.yaml")
                                        if p.name != "kustomization.yaml"))  # fmt: skip
def test_kubernetes_manifests_pass_the_schemas(name: str) -> None:
    for doc in yaml.safe_load_all((K8S / name).read_text()):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_gateway_replicas_share_redis_with_probes_and_requests(tmp_path: Path) -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for _, d in k8s_docs()}
    gw = docs[("Deployment", "frugal-gateway")]
    assert gw["spec"]["replicas"] >= 2
    (c,) = gw["spec"]["template"]["spec"]["containers"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory"} <= set(c["resources"]["requests"])
    env = {e["name"] for e in c["env"]}
    assert {"FRUGAL_ADMIN_KEY", "PROMETHEUS_MULTIPROC_DIR", "FRUGAL_CONFIG"} <= env
    for kind, name in (("StatefulSet", "frugal-redis"), ("Deployment", "frugal-llama")):
        (pc,) = docs[(kind, name)]["spec"]["template"]["spec"]["containers"]
        assert "readinessProbe" in pc and "livenessProbe" in pc and "requests" in pc["resources"]
    cm = docs[("ConfigMap", "frugal-config")]["data"]["frugal.yaml"]
    settings = Settings(**yaml.safe_load(cm))
    assert settings.redis_url == "redis://frugal-redis:6379/0"
    assert ("Service", "frugal-redis") in docs and ("Service", "frugal-llama") in docs
    for fname, text in docs[("ConfigMap", "frugal-policies")]["data"].items():
        (tmp_path / fname).write_text(text)
    assert set(load_policies(tmp_path, "UTC").teams) == {"research", "support"}


def test_grafana_files_are_valid() -> None:
    for path in (ROOT / "grafana" / "dashboards").glob("*.json"):
        d = json.loads(path.read_text())
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for p in d["panels"]:
            g = p["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24, (path.name, p["title"])
            assert p["description"], (path.name, p["title"])
            if p["type"] == "text":  # a note on the board: words, no query
                assert p["options"]["content"].strip(), (path.name, p["title"])
            else:
                assert p["targets"], (path.name, p["title"])
    for path in (ROOT / "grafana" / "provisioning").rglob("*.yaml"):
        assert yaml.safe_load(path.read_text())["apiVersion"] == 1
