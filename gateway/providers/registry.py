"""The only place that switches on a provider's name."""

import logging
import os

from gateway.config import ConfigError, ModelConfig
from gateway.providers.base import Provider
from gateway.providers.http1 import header_safe
from gateway.providers.litellm_provider import LiteLLMProvider
from gateway.providers.native import NativeProvider
from gateway.providers.openai_compat import OpenAICompatProvider, client_for

log = logging.getLogger("frugal")


def missing_credential(cfg: ModelConfig) -> str | None:
    """The environment variable this model's key should come from, when it is not set."""
    if cfg.api_key_env and not os.environ.get(cfg.api_key_env):
        return cfg.api_key_env
    return None


def upstream_key(name: str, cfg: ModelConfig) -> str | None:
    """The model's key from its environment variable; one that cannot go in a header (a
    trailing newline from `echo key > file`, any control character) is a ConfigError."""
    api_key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
    if api_key and not header_safe(api_key):
        raise ConfigError(
            f"models.{name}.api_key_env: {cfg.api_key_env} holds a control character "
            "(a trailing newline?) or a non-ASCII one; set it to the bare key"
        )
    return api_key


def check_egress(models: dict[str, ModelConfig]) -> None:
    """What `frugal serve` and `check-config` verify before starting: every key a header can
    carry, every TLS file loadable, every proxy variable usable. Raises ConfigError."""
    for name, cfg in models.items():
        upstream_key(name, cfg)
        if cfg.provider == "openai":
            client_for(name, cfg).close()


def build_provider(name: str, cfg: ModelConfig) -> Provider:
    api_key = upstream_key(name, cfg)
    if cfg.provider == "openai" and set(cfg.apis) - {"chat"}:
        return NativeProvider(name, cfg, api_key)  # passes Responses / Messages through
    if cfg.provider == "openai":
        return OpenAICompatProvider(name, cfg, api_key)
    return LiteLLMProvider(name, cfg, api_key)
