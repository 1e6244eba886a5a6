"""Policy files: validated at load, errors name the file, the field and the fix; reloads keep
the previous policies when a new file is invalid."""

from decimal import Decimal
from pathlib import Path

import pytest

from gateway.budget.reload import PolicyWatcher
from gateway.config import ConfigError
from gateway.keys import KeyRing, create_key
from gateway.policies import Policies, load_policies

ROOT = Path(__file__).resolve().parents[2]
GOOD = """
timezone: Europe/Berlin
teams:
  research:
    budgets: {day: "5", month: "100.50"}
    limits: {rpm: 60}
    soft: {at: 0.8, actions: [force_small_tier, alert], webhook: "http://127.0.0.1:9/hook"}
    keys:
      a1b2c3d4e5f6: {budgets: {day: "1"}}
  support:
    timezone: America/New_York
    hard: {action: free_models_only}
"""


def test_the_shipped_example_is_valid() -> None:
    p = load_policies(ROOT / "policies")
    assert "research" in p.teams


def test_a_valid_file_loads_with_time_zones_and_key_sub_budgets(tmp_path: Path) -> None:
    (tmp_path / "teams.yaml").write_text(GOOD)
    p = load_policies(tmp_path)
    r = p.teams["research"]
    assert r.tz.key == "Europe/Berlin"
    assert r.policy.budgets.month == Decimal("100.50")
    assert r.key("a1b2c3d4e5f6") is not None and r.key("ffffffffffff") is None
    assert p.teams["support"].tz.key == "America/New_York"


@pytest.mark.parametrize(
    ("yaml_text", "field", "fix"),
    [
        ("teams: {a: {budgets: {dayly: '5'}}}", "teams.a.budgets.dayly", "remove it"),
        ("teams: {a: {budgets: {day: 'five'}}}", "teams.a.budgets.day", "USD as a number"),
        ("teams: {a: {budgets: {day: '-1'}}}", "teams.a.budgets.day", "positive amount"),
        ("teams: {a: {hard: {action: explode}}}", "teams.a.hard.action", "allowed values"),
        ("teams: {a: {timezone: Mars/Base}}", "teams.a.timezone", "correct the value"),
        ("teams: {a: {keys: {notakey: {}}}}", "teams.a.keys", "correct the value"),
    ],
)
def test_errors_name_the_file_the_field_and_the_fix(
    tmp_path: Path, yaml_text: str, field: str, fix: str
) -> None:
    (tmp_path / "teams.yaml").write_text(yaml_text)
    with pytest.raises(ConfigError) as e:
        load_policies(tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "teams.yaml") in msg and field in msg and fix in msg


def test_a_team_defined_in_two_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("teams: {x: {}}")
    (tmp_path / "b.yaml").write_text("teams: {x: {}}")
    with pytest.raises(ConfigError, match=r"teams\.x is already defined in .*a\.yaml"):
        load_policies(tmp_path)


def test_keys_yaml_is_not_read_as_a_policy_file(tmp_path: Path) -> None:
    create_key(tmp_path, "research")
    assert load_policies(tmp_path).teams == {}


def test_an_invalid_reload_is_refused_and_the_previous_policies_stay(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "teams.yaml").write_text(GOOD)
    applied: list[Policies] = []

    def apply(p: Policies, k: KeyRing) -> None:
        applied.append(p)

    w = PolicyWatcher(tmp_path, "UTC", apply)
    assert w.reload() and "research" in applied[-1].teams
    (tmp_path / "teams.yaml").write_text("teams: {research: {budgets: {day: 'x'}}}")
    assert not w.reload()
    assert len(applied) == 1 and w.refused == 1
    assert "policy reload refused, the previous policies" in caplog.text
    assert "teams.research.budgets.day" in caplog.text
