"""The OpenAI-compatible gateway (``adaptroute serve``): a thin shell over Router.

Needs the ``server`` extra (``pip install 'adaptroute[server]'``: Starlette and uvicorn), imported on
first use of create_app or serve; nothing below this package imports it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .config_file import GatewayConfig, ServerSettings, load_config

__all__ = ["GatewayConfig", "ServerSettings", "check_config", "create_app", "load_config", "serve"]

_LAZY = {"create_app": "adaptroute.server.app", "serve": "adaptroute.server.run", "check_config": "adaptroute.server.run"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'adaptroute.server' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


if TYPE_CHECKING:
    from .app import create_app
    from .run import check_config, serve
