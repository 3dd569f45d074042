"""Which App a command works on: ``--app MODULE:ATTR``, else PGQ_APP, else a bare App."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from pgq.app import App
from pgq.errors import ConfigError
from pgq.settings import Settings


def load_app(spec: str) -> App:
    """Import ``MODULE:ATTR`` (from the current directory too) and return the App."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"--app must look like MODULE:ATTR (e.g. myproject.tasks:app), got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"cannot import {module_name!r} for --app: {exc}") from None
    if not hasattr(module, attr):
        raise ConfigError(f"module {module_name!r} has no attribute {attr!r} (--app {spec})")
    app = getattr(module, attr)
    if not isinstance(app, App):
        raise ConfigError(f"{spec} is {type(app).__name__}, not a pgq.App")
    return app


def app_spec(args: argparse.Namespace) -> str | None:
    """--app, else PGQ_APP: name the app once for every command."""
    return getattr(args, "app", None) or Settings.from_env().app


def app_for(args: argparse.Namespace) -> App:
    spec = app_spec(args)
    return load_app(spec) if spec else App()
