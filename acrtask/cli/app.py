"""The root command, and the one place where exceptions become messages and exit codes."""

from __future__ import annotations

import logging
import sys
import traceback

import typer

from acrtask import wiring
from acrtask.cli import credential, options, quick, runs, timer, transfer, watch  # noqa: F401 - they add commands
from acrtask.cli.builder import builder_app
from acrtask.cli.image import image_app
from acrtask.cli.notify import notify_app
from acrtask.cli.registry import registry_app
from acrtask.cli.task import task_app
from acrtask.errors import AcrTaskError, printable

app = typer.Typer(
    name="acrtask",
    help="Rebuild container images when their base images change: ACR Tasks' base-image trigger, "
         "for any registry.",
    epilog=options.GLOBAL_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(task_app, name="task")
app.add_typer(image_app, name="image")
app.add_typer(registry_app, name="registry")
app.add_typer(notify_app, name="notify")
app.add_typer(builder_app, name="builder")
app.command("build", epilog="Examples:\n\n  acrtask build -r localhost:5000 -t app:{{.Run.ID}} .\n\n"
            "  acrtask build -r localhost:5000 -t app:v1 -f Dockerfile.prod --build-arg VERSION=1 ./src")(quick.build)
app.command("run", epilog="Examples:\n\n  acrtask run -r localhost:5000 -f acr-task.yaml .\n\n"
            "  acrtask run -r localhost:5000 -f acr-task.yaml -c ./src --set tag=v2\n\n"
            "  acrtask run -r localhost:5000 --cmd '$Registry/app:v1 ./test.sh' /dev/null")(quick.run)

log = logging.getLogger("acrtask")


def _error(message: str) -> None:
    # Always one line: a newline or terminal escape in user input (a task name) is shown escaped.
    sys.stderr.write(f"ERROR: {printable(message)}\n")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `acrtask` script. Never returns: exits with az's codes (0, 1, 2, 3)."""
    argv = sys.argv[1:] if argv is None else argv
    code = 0
    debug = False  # set once the global arguments are read: a refused --debug shows no traceback
    try:
        args, rest = options.split_global_args(argv)
        debug = args.debug
        from acrtask.cli.output import FORMATS, GRAPH_FORMATS, check_format

        graph = [a for a in rest if not a.startswith("-")][:2] == ["task", "graph"]
        args.output = check_format(args.output, FORMATS + GRAPH_FORMATS if graph else FORMATS)
        options.current = args
        options.configure_logging(args)
        options.note_ignored(args)
        result = app(args=rest, prog_name="acrtask", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        _error("Operation cancelled.")
        code = 130
    except typer.TyperException as exc:  # usage errors from the parser: az exits 2 for these
        message = " ".join((exc.format_message() if hasattr(exc, "format_message") else str(exc)).split())
        if message:
            _error(message)
            code = getattr(exc, "exit_code", 2)
        # else: a group called without a command; its help is already printed, as az does.
    except AcrTaskError as exc:
        if debug:
            traceback.print_exc()
        _error(str(exc))
        code = exc.exit_code
    except KeyboardInterrupt:
        _error("Interrupted.")
        code = 130
    except OSError as exc:  # the environment (a full disk, a folder we cannot write): say which file and why
        if debug:
            traceback.print_exc()
        where = f"{exc.filename}: " if exc.filename else ""
        _error(f"{where}{exc.strerror or type(exc).__name__}. Check the file's folder, permissions and free "
               "space; run again with --debug for the traceback.")
        code = 1
    except Exception as exc:  # a bug: say so plainly, show the traceback only under --debug
        if debug:
            traceback.print_exc()
        _error(f"Unexpected error: {type(exc).__name__}: {exc}. Run again with --debug for the traceback.")
        code = 1
    wiring.end()  # the command's registry client and database, closed
    sys.stdout.flush()
    sys.exit(code)
