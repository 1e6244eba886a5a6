"""ASGI entry for uvicorn workers: the configuration comes from FRUGAL_CONFIG."""

from gateway.app import create_app
from gateway.config import load_settings
from gateway.front import Front
from gateway.logs import setup_logging


def app_from_env() -> Front:
    setup_logging()
    return create_app(load_settings())
