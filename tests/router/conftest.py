"""Shared fixtures: the learned scorer needs the MiniLM files (installed packages, or the
tokenizer under ../shared when FRUGAL_ROUTER_TOKENIZER is unset)."""

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared"
TOKENIZER = SHARED / "models" / "all-MiniLM-L6-v2-tokenizer"
ROUTING_DATA = SHARED / "routing-data"

if "FRUGAL_ROUTER_TOKENIZER" not in os.environ and TOKENIZER.is_dir():
    os.environ["FRUGAL_ROUTER_TOKENIZER"] = str(TOKENIZER)


@pytest.fixture(scope="session")
def learned_scorer():  # type: ignore[no-untyped-def]
    from gateway.router.loading import load_scorer

    return load_scorer("default")
