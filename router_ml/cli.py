"""`router-ml`: one command group, its commands contributed by the layers that own them.

Each layer keeps its commands beside its code and lists them as entry points in the
group `router_ml.commands` (pyproject.toml): `route` (router_ml.core.cli), `rules`
(router_ml.policy.cli), `serve` (router_ml.serve.cli), and the training commands
(router_ml.training.cli). The group finds them by name and imports a command's module only when
that command runs or help is shown, so this module imports no layer and nothing
imports it. Another installed package can add commands the same way.

Bad arguments and bad input exit with status 2 and one line on stderr that names the
problem; a valid request the data refuses (a promotion of a worse version) exits 1.
"""

from __future__ import annotations

import os
import sys
from importlib import metadata

import click

from router_ml.errors import EXIT_BAD_INPUT, RouterError

ENTRY_POINT_GROUP = "router_ml.commands"


class LayeredGroup(click.Group):
    """A click group whose commands are entry points, loaded on first use."""

    _found: dict[str, metadata.EntryPoint] | None = None

    def _entry_points(self) -> dict[str, metadata.EntryPoint]:
        if self._found is None:
            self._found = {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
        return self._found

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._entry_points()))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None and name in self._entry_points():
            command = self._entry_points()[name].load()
            self.add_command(command, name)
        return command


@click.group(cls=LayeredGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="router-ml")
def cli() -> None:
    """Train, evaluate and use a router that picks the cheapest LLM that will do the job."""


def main(argv: list[str] | None = None) -> int:
    """Entry point: one-line errors; exit 2 for bad arguments or bad input, 1 for a refusal."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    args = sys.argv[1:] if argv is None else argv
    command = next((a for a in args if not a.startswith("-")), "")
    prefix = f"router-ml {command}".strip()
    try:
        code = cli.main(args=args, prog_name="router-ml", standalone_mode=False)
        if isinstance(code, int):  # click returns ctx.exit()'s code when not standalone
            return code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo(f"{prefix}: aborted", err=True)
        return 130
    except click.ClickException as exc:
        click.echo(f"{prefix}: error: {' '.join(exc.format_message().split())}", err=True)
        return EXIT_BAD_INPUT
    except RouterError as exc:
        click.echo(f"{prefix}: error: {' '.join(str(exc).split())}", err=True)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
