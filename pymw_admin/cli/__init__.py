"""The ``pymw-admin`` command: thin commands over the library, one module a command group."""

from pymw_admin.cli import (
    backup,  # noqa: F401
    bundle,  # noqa: F401
    deploy_app,  # noqa: F401
    destroy,  # noqa: F401
    init_project,  # noqa: F401
    rehearse,  # noqa: F401  (registers its commands)
    runs,  # noqa: F401
    status,  # noqa: F401
    upgrade,  # noqa: F401
)
from pymw_admin.cli.app import app, run


def main() -> None:
    run()


__all__ = ["app", "main"]
