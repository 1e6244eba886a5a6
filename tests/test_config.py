"""Configuration is typed and validated at start-up; errors name the file, field and fix."""

from pathlib import Path

import pytest

from gateway.config import DEFAULT_CONFIG, ConfigError, load_settings


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "frugal.yaml"
    p.write_text(text)
    return p


BASE = """
models:
  m1: {model: gpt-4.1, base_url: "http://127.0.0.1:1/v1", tier: small}
routes:
  auto: {tiers: [small]}
"""


def test_embedded_defaults_load() -> None:
    s = load_settings(DEFAULT_CONFIG)
    assert s.models["smollm2-135m"].tier == "small"
    assert s.models["gpt-4.1"].api_key_env == "OPENAI_API_KEY"
    assert s.routes["auto"].tiers == ["small", "large"]


def test_unknown_key_names_file_field_and_fix(tmp_path: Path) -> None:
    p = _write(tmp_path, BASE + "servr: {port: 1}\n")
    with pytest.raises(ConfigError) as e:
        load_settings(p)
    msg = str(e.value)
    assert str(p) in msg and "servr" in msg and "fix: remove it" in msg


def test_bad_value_names_nested_field(tmp_path: Path) -> None:
    p = _write(tmp_path, BASE.replace("tier: small", "tier: huge"))
    with pytest.raises(ConfigError) as e:
        load_settings(p)
    assert "models.m1.tier" in str(e.value) and "'huge'" in str(e.value)


def test_negative_price_rejected(tmp_path: Path) -> None:
    p = _write(tmp_path, BASE.replace("tier: small", 'tier: small, price: {input_per_mtok: "-1"}'))
    with pytest.raises(ConfigError, match=r"models\.m1\.price\.input_per_mtok"):
        load_settings(p)


def test_route_needs_a_model_of_each_tier(tmp_path: Path) -> None:
    p = _write(tmp_path, BASE.replace("tiers: [small]", "tiers: [small, large]"))
    with pytest.raises(ConfigError, match="no chat model has them"):
        load_settings(p)


def test_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(_write(tmp_path, "models: [unclosed"))


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRUGAL_SERVER__PORT", "9123")
    monkeypatch.setenv("FRUGAL_REDIS_URL", "redis://127.0.0.1:6399/0")
    s = load_settings(_write(tmp_path, BASE + "server: {port: 8000}\n"))
    assert s.server.port == 9123 and s.redis_url == "redis://127.0.0.1:6399/0"
    assert s.policies_dir == tmp_path / "policies"


def test_prices_are_decimal(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        BASE.replace(
            "tier: small", 'tier: small, price: {input_per_mtok: "0.1", output_per_mtok: "0.4"}'
        ),
    )
    from decimal import Decimal

    assert load_settings(p).models["m1"].price.input_per_mtok == Decimal("0.1")
