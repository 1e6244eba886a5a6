"""The reference pages under docs/reference/ are generated from the code; a committed page that
differs from what the generator makes now (a config key, metric or CLI option added, renamed
or described differently) fails here."""

import pytest

from gateway.docs_gen import cli
from gateway.docs_gen.pages import PAGES, REFERENCE, REGENERATE, undocumented


@pytest.mark.parametrize("name", sorted(PAGES))
def test_reference_page_matches_the_code(name: str) -> None:
    path = REFERENCE / name
    assert path.exists(), f"docs/reference/{name} is missing; run `{REGENERATE}` and commit it"
    committed = path.read_text(encoding="utf-8")
    assert committed == PAGES[name](), (
        f"docs/reference/{name} is out of date with the code; run `{REGENERATE}` "
        "and commit the result"
    )


def test_every_configuration_and_policy_key_has_a_description() -> None:
    assert undocumented() == [], (
        "configuration keys without a description (write a comment right above the field, or "
        f"Field(description=...)), then run `{REGENERATE}`: {undocumented()}"
    )


def test_reference_lists_every_command() -> None:
    text = (REFERENCE / "cli.md").read_text(encoding="utf-8")
    for command in ("serve", "local", "keys create", "check-config", "spend", "report", "prices"):
        assert f"## `frugal {command}`" in text
    assert "`--no-local`" in text


def test_every_cli_option_has_help_text() -> None:
    """Every option of every `frugal` command says what it does (the generator lists any
    that does not)."""
    assert cli.undocumented() == []
