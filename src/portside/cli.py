"""The ``portside`` command: serve a built-in service, or a user's application, from a shell.

::

    portside serve [SERVICE] [--listen ENDPOINT]... [options]   a service by name (default echo)
    portside run MODULE:ATTR --listen ENDPOINT... [options]     your Protocol/Factory/handler
    portside services                                           list the services
    portside --version

Every tuning option is derived from a dataclass field (name, type, default and
``metadata["help"]``): the limits from :class:`portside.Limits`, a service's own options from
its options dataclass. :func:`options_markdown` renders the same table for docs/cli.md.

Exit status: 0 after a graceful (or forced) shutdown on SIGINT/SIGTERM, 2 for a usage error
(bad option, endpoint or target), 1 when an endpoint cannot be bound.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import os
import sys
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import portside
from portside.config import Limits
from portside.errors import BindError, EndpointError

__all__ = ["Option", "add_options", "main", "options_markdown", "options_of", "servable"]

log = logging.getLogger("portside")

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
LOG_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
# File descriptors a server needs beside its connections: listening sockets, the loop's own
# (epoll, self-pipe, signal wake-up), log files, and the odd file a handler opens.
FD_HEADROOM = 64

EXIT_OK, EXIT_BIND, EXIT_USAGE = 0, 1, 2
# 128 + SIGINT, as a shell reports a process stopped by Ctrl-C.
EXIT_INTERRUPTED = 130

_METAVARS: dict[type, str] = {int: "N", float: "NUM", str: "TEXT", Path: "PATH"}


class UsageError(Exception):
    """A mistake on the command line; the message is printed as one line, exit status 2."""


# -- options derived from dataclasses --------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """A command-line option derived from one dataclass field."""

    name: str  # the field's name
    flag: str  # --kebab-case
    kind: type  # int, float, str, Path, or bool (a --flag / --no-flag pair)
    optional: bool  # the field accepts None (written "none" on the command line)
    default: Any
    help: str

    @property
    def metavar(self) -> str:
        """How the value is shown in help: ``N``, ``NUM|none``, ``PATH``... (none for a flag)."""
        if self.kind is bool:
            return ""
        base = _METAVARS[self.kind]
        return f"{base}|none" if self.optional else base

    @property
    def usage(self) -> str:
        """How the option is written: ``--idle-timeout NUM|none``, ``--listing, --no-listing``."""
        if self.kind is bool:
            return f"{self.flag}, --no-{self.flag[2:]}"
        return f"{self.flag} {self.metavar}"

    def convert(self, text: str) -> Any:
        """Parse one command-line value (argparse ``type=``)."""
        if self.optional and text.strip().lower() == "none":
            return None
        try:
            return self.kind(text)
        except ValueError:
            kind = {int: "an integer", float: "a number"}.get(self.kind, "valid")
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None

    def shown_default(self) -> str:
        """The default as a user would type it."""
        if self.kind is bool:
            return self.flag if self.default else f"--no-{self.flag[2:]}"
        if self.default is None:
            return "none"
        if isinstance(self.default, float) and self.default.is_integer():
            return str(int(self.default))
        return str(self.default)


def options_of(cls: type[Any]) -> list[Option]:
    """The options for every field of dataclass ``cls``; TypeError for an unsupported type."""
    hints = typing.get_type_hints(cls)
    found = []
    for spec in dataclasses.fields(cls):
        kind, optional = _base_type(hints[spec.name])
        if kind not in _METAVARS and not (kind is bool and not optional):
            raise TypeError(f"{cls.__name__}.{spec.name}: no command-line form for {kind!r}")
        help_text = spec.metadata.get("help")
        if not help_text:
            raise TypeError(f"{cls.__name__}.{spec.name} has no metadata['help']")
        if spec.default is dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{spec.name} has no default")
        flag = "--" + spec.name.replace("_", "-")
        found.append(Option(spec.name, flag, kind, optional, spec.default, help_text))
    return found


def _base_type(hint: Any) -> tuple[Any, bool]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        rest = [arg for arg in args if arg is not type(None)]
        if len(rest) == 1:
            return rest[0], len(rest) < len(args)
    return hint, False


def add_options(group: Any, options: Iterable[Option], dest_prefix: str) -> None:
    """Add ``options`` to an argparse parser or group; each is stored as ``dest_prefix + name``.

    An option not given is absent from the namespace, so the dataclass default applies.
    """
    for option in options:
        how: dict[str, Any] = (
            {"action": argparse.BooleanOptionalAction}
            if option.kind is bool
            else {"type": option.convert, "metavar": option.metavar}
        )
        group.add_argument(
            option.flag,
            dest=dest_prefix + option.name,
            default=argparse.SUPPRESS,  # absent means "the dataclass default"
            help=f"{option.help} (default: {option.shown_default()})".replace("%", "%%"),
            **how,
        )


def _given(args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    return {
        key.removeprefix(prefix): value
        for key, value in vars(args).items()
        if key.startswith(prefix)
    }


def options_markdown() -> str:
    """The options table of docs/cli.md, rendered from the same dataclasses as the parser."""
    from portside.services import SERVICES

    def table(options: Iterable[Option]) -> list[str]:
        rows = ["| option | default | what it does |", "|---|---|---|"]
        for option in options:
            usage = option.usage.replace("|", "\\|")
            rows.append(f"| `{usage}` | `{option.shown_default()}` | {option.help} |")
        return rows

    lines = ["Limits (`portside serve` and `portside run`):", "", *table(options_of(Limits))]
    for service in SERVICES.values():
        if service.options_type is not None:
            lines += ["", f"`{service.name}` (`portside serve {service.name}`):", ""]
            lines += table(options_of(service.options_type))
    return "\n".join(lines) + "\n"


# -- the parser ------------------------------------------------------------------------------

_LIMIT = "limit:"
_SERVICE = "service:"


def build_parser() -> argparse.ArgumentParser:
    """The ``portside`` argument parser, with its subcommands."""
    from portside.services import SERVICES

    parser = argparse.ArgumentParser(
        prog="portside", description="Serve classic network protocols on one asyncio engine."
    )
    parser.add_argument("--version", action="version", version=f"portside {portside.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="event loop: uvloop when installed (auto), or the one named (default: auto)",
    )
    common.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        help="log to stderr from this level on (default: info)",
    )
    add_options(common.add_argument_group("limits"), options_of(Limits), _LIMIT)

    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="serve a built-in service",
        description="Serve a built-in service until SIGINT/SIGTERM (graceful; a second forces).",
    )
    serve.add_argument(
        "service",
        nargs="?",
        default="http",
        metavar="SERVICE",
        help=f"one of: {', '.join(SERVICES)} (default: http)",
    )
    serve.add_argument(
        "directory",
        nargs="?",
        metavar="DIR",
        help="http: the directory to serve (default: the current directory)",
    )
    serve.add_argument(
        "--listen",
        action="append",
        metavar="ENDPOINT",
        help="where to listen, e.g. tcp:7007:interface=127.0.0.1, udp:7007, unix:/run/x.sock; "
        "repeat for several (default: the service's TCP and UDP ports on 127.0.0.1)",
    )
    serve.add_argument("--list", action="store_true", help="list the services and exit")
    for service in SERVICES.values():
        if service.options_type is not None:
            group = serve.add_argument_group(f"{service.name} options")
            add_options(group, options_of(service.options_type), f"{_SERVICE}{service.name}:")

    run = commands.add_parser(
        "run",
        parents=[common],
        help="serve your own application",
        description="Serve MODULE:ATTR until SIGINT/SIGTERM. ATTR may be a Factory instance or "
        "subclass, a Protocol subclass, a DatagramProtocol, an asyncio.Protocol factory or an "
        "async def handler(reader, writer).",
    )
    run.add_argument("target", metavar="MODULE:ATTR", help="what to serve, e.g. myapp:factory")
    run.add_argument(
        "--listen", action="append", required=True, metavar="ENDPOINT", help="where to listen"
    )

    commands.add_parser("services", help="list the built-in services")
    legacy = commands.add_parser(
        "legacy",
        help="run an unmodified asyncore/asynchat/smtpd program",
        description="Run SCRIPT with `import asyncore`, `asynchat` and `smtpd` resolved to "
        "portside's modules (they are gone from the stdlib since Python 3.12).",
    )
    legacy.add_argument("argv", nargs=argparse.REMAINDER, metavar="SCRIPT [ARGS...]")
    return parser


# -- commands --------------------------------------------------------------------------------


def list_services(out: typing.TextIO) -> None:
    """Print one line per service: name, RFC, default endpoints, summary."""
    from portside.services import SERVICES

    for service in SERVICES.values():
        rfc = f"RFC {service.rfc}" if service.rfc else ""
        kinds = "+".join(e.split(":", 1)[0] for e in service.endpoints)
        extra = ""
        if service.options_type is not None:
            flags = ", ".join(o.flag for o in options_of(service.options_type))
            extra = f" (options: {flags})"
        out.write(
            f"{service.name:<9} {rfc:<8} {kinds} 127.0.0.1:{service.port:<6} "
            f"{service.summary}{extra}\n"
        )


def servable(target: Any) -> Any:
    """What to hand to ``portside.Server`` for a ``portside run`` target.

    A Twisted-door ``Factory`` subclass is instantiated with no arguments, a ``Protocol``
    subclass gets ``Factory.forProtocol``, a ``DatagramProtocol`` subclass is instantiated;
    anything else (a factory or datagram protocol instance, an ``asyncio.Protocol`` class or
    factory, an ``async def`` handler, a service) is served as it is.
    """
    from portside.internet.protocol import AbstractDatagramProtocol, Factory, Protocol

    if isinstance(target, type):
        if issubclass(target, Factory | AbstractDatagramProtocol):
            return target()
        if issubclass(target, Protocol):
            return Factory.forProtocol(target)
    return target


def load_target(spec: str) -> Any:
    """Import ``MODULE:ATTR`` (ATTR may be dotted); the current directory is importable."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UsageError(f"{spec!r} is not MODULE:ATTR (like myapp:factory)")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise UsageError(
                f"cannot import {module_name!r}: no module named {missing!r}"
            ) from None
        raise
    for part in attr.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise UsageError(f"module {module_name!r} has no attribute {attr!r}") from None
    return found


def configure_logging(level: str) -> None:
    """Log records from ``level`` on to stderr, one compact line each."""
    logging.basicConfig(
        level=level.upper(), format=LOG_FORMAT, datefmt=LOG_DATE_FORMAT, stream=sys.stderr
    )


def raise_open_file_limit(limits: Limits) -> None:
    """Raise the soft open-file limit so ``max_connections`` sockets fit (up to the hard one).

    Many systems start processes at 1,024 descriptors, below the default 10,000 connections.
    """
    try:
        import resource
    except ImportError:  # not on this platform (Windows): nothing to raise
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if limits.max_connections is None:
        if hard == resource.RLIM_INFINITY:
            return
        want = hard
    else:
        want = limits.max_connections + FD_HEADROOM
        if hard != resource.RLIM_INFINITY and want > hard:
            log.warning(
                "max_connections %d is above the open-file limit %d; accepting will pause there",
                limits.max_connections,
                hard,
            )
            want = hard
    if soft != resource.RLIM_INFINITY and want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _limits(args: argparse.Namespace) -> Limits:
    try:
        return Limits(**_given(args, _LIMIT))
    except ValueError as exc:
        raise UsageError(f"bad limits: {exc}") from None


def _service_app(args: argparse.Namespace) -> tuple[Any, list[str]]:
    from portside.services import SERVICES

    if args.service not in SERVICES and args.directory is None and os.path.isdir(args.service):
        args.service, args.directory = "http", args.service  # `portside serve DIR`
    service = SERVICES.get(args.service)
    if service is None:
        raise UsageError(f"unknown service {args.service!r} (known: {', '.join(SERVICES)})")
    changes: dict[str, Any] = {}
    for key, value in _given(args, _SERVICE).items():
        owner, name = key.split(":", 1)
        if owner != service.name:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} is an option of {owner}, not of {service.name}")
        changes[name] = value
    if args.directory is not None:
        if service.name != "http":
            raise UsageError(f"{service.name} takes no DIR argument")
        changes["root"] = args.directory
    if changes:
        service = service.with_options(**changes)
    return service, args.listen or list(service.endpoints)


def _serve(prog: str, args: argparse.Namespace) -> int:
    from portside.app import as_handlers
    from portside.core.endpoints import parse_endpoint
    from portside.core.loop import loop_factory

    if args.command == "run":
        app, listen = servable(load_target(args.target)), args.listen
    else:
        app, listen = _service_app(args)
    limits = _limits(args)
    try:
        endpoints = [parse_endpoint(description) for description in listen]
        loop_factory(args.loop)
    except (EndpointError, RuntimeError) as exc:
        raise UsageError(str(exc)) from None
    what = args.target if args.command == "run" else args.service
    try:
        handlers = as_handlers(app)
    except (TypeError, ValueError, OSError) as exc:
        raise UsageError(f"cannot serve {what}: {exc}") from None
    configure_logging(args.log_level)
    raise_open_file_limit(limits)
    try:
        portside.serve(handlers, *endpoints, limits=limits, loop=args.loop)
    except EndpointError as exc:  # e.g. a udp: endpoint for a TCP-only application
        raise UsageError(str(exc)) from None
    except BindError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_BIND
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``portside`` command with ``argv`` (default: ``sys.argv[1:]``); return the status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "services" or (args.command == "serve" and args.list):
        list_services(sys.stdout)
        return EXIT_OK
    if args.command == "legacy":
        from portside import legacy as legacy_runner

        return legacy_runner.main(args.argv)
    prog = f"{parser.prog} {args.command}"
    try:
        return _serve(prog, args)
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C before the server's own signal handling was in place
        return EXIT_INTERRUPTED
