"""The only place that switches on a provider's name."""

import logging
import os

from gateway.config import ModelConfig
from gateway.providers.base import Provider
from gateway.providers.litellm_provider import LiteLLMProvider
from gateway.providers.openai_compat import OpenAICompatProvider

log = logging.getLogger("frugal")


def missing_credential(cfg: ModelConfig) -> str | None:
    """The environment variable this model's key should come from, when it is not set."""
    if cfg.api_key_env and not os.environ.get(cfg.api_key_env):
        return cfg.api_key_env
    return None


def build_provider(name: str, cfg: ModelConfig) -> Provider:
    api_key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
    if cfg.provider == "openai":
        return OpenAICompatProvider(name, cfg, api_key)
    return LiteLLMProvider(name, cfg, api_key)
