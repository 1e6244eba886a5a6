"""ASGI entry for uvicorn workers: the configuration comes from FRUGAL_CONFIG."""

import logging
import os

from fastapi import FastAPI

from gateway.app import create_app
from gateway.config import load_settings


def app_from_env() -> FastAPI:
    logging.basicConfig(
        level=os.environ.get("FRUGAL_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    return create_app(load_settings())
