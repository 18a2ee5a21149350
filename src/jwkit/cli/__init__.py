"""The ``jwkit`` command line (install with the ``cli`` extra).

One module per command group. Exit codes: 0 success, 1 the check failed (a token did not
verify, an audit found problems), 2 usage error (click's own), 3 an input could not be read.
"""

from __future__ import annotations

import click

from .._version import __version__
from ._output import EXIT_INPUT


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__, prog_name="jwkit")
def main() -> None:
    """jwkit: generate, publish and verify JSON Web Keys and the tokens they sign."""


def _register() -> None:
    # Each line registers one command group; modules own their commands.
    from . import demo, keys, token

    main.add_command(keys.keys)
    main.add_command(token.token)
    main.add_command(demo.demo)
    from . import admin, audit, db, serve, service_keys  # noqa: F401  (adds `keys rewrap`)

    main.add_command(serve.serve)
    main.add_command(admin.admin)
    main.add_command(db.db)
    main.add_command(audit.audit)
    from . import jwks, verify  # noqa: F401  (verify adds `token verify`)

    main.add_command(jwks.jwks)
    from . import status

    main.add_command(status.status)
    from . import admin_migration  # noqa: F401  (adds `admin keys import`, `admin foreign-keys`)


_register()

__all__ = ["EXIT_INPUT", "main"]
