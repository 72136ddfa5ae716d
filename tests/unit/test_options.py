"""Every option is declared once: a flag that several commands take reads the same everywhere
(help, environment variable, type), discovered from the app itself so that no command can drift.
The few flags that mean something else in some command are listed here with the reason."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import typer

from ingest.cli import app

# (command, flag) -> why it is not the same option as the flag elsewhere.
DIFFERENT_MEANING = {
    ("tail", "--since"): "tail's start point (also an ISO timestamp or Nh) for prefixes with "
    "nothing in the ledger, not the backfill's first day of log files",
    ("report clickops", "--since"): "the start of a report's window, an instant, 30d by default",
    ("report principal", "--since"): "the start of a report's window, an instant, 90d by default",
    ("report clickops", "--until"): "the end of a report's window, exclusive, now by default",
    ("report principal", "--until"): "the end of a report's window, exclusive, now by default",
    ("sigma convert", "--format"): "what convert prints (dsl), not a report's md/csv/json",
    ("sigma hunt", "--since"): "the start of the hunt's window, an instant, 30d by default",
    ("sigma hunt", "--until"): "the end of the hunt's window, exclusive, now by default",
    ("report principal", "--user"): "the IAM user reported on (README: --user alice); basic "
    "auth is --auth-user there",
}


def _commands(group: Any, ctx: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if hasattr(cmd, "list_commands"):
            yield from _commands(cmd, ctx, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", cmd


def _params() -> list[tuple[str, str, Any]]:
    """(command, flag or argument name, parameter) for every parameter of every command."""
    root = typer.main.get_command(app)
    ctx = root.make_context("ct-ingest", [], resilient_parsing=True)
    out = [("ct-ingest", p.opts[0], p) for p in root.params if p.name != "help"]
    for command, cmd in _commands(root, ctx):
        out += [(command, p.opts[0], p) for p in cmd.params if p.name != "help"]
    return out


PARAMS = _params()


def _kind(param: Any) -> Any:
    """The parameter's type: typer >= 0.29 keeps the annotation, click's own a ``ParamType``."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None:
        return descriptor.annotation
    return type(param.type).__name__, param.type.name


def _declaration(param: Any) -> tuple[Any, ...]:
    envvar = tuple(param.envvar) if isinstance(param.envvar, list) else param.envvar
    return (
        param.help,
        envvar,
        _kind(param),
        param.multiple,
        getattr(param, "is_flag", False),
        tuple(param.opts),
        tuple(param.secondary_opts),
    )


class TestOptions:
    def test_a_flag_is_declared_once(self) -> None:
        """Every flag taken by several commands has the same help, variable and type in all."""
        by_flag: dict[str, dict[tuple[Any, ...], list[str]]] = defaultdict(dict)
        for command, flag, param in PARAMS:
            if (command, flag) not in DIFFERENT_MEANING:
                by_flag[flag].setdefault(_declaration(param), []).append(command)
        assert {} == {f: decls for f, decls in by_flag.items() if len(decls) > 1}

    def test_shared_flags_are_really_shared(self) -> None:
        """The check above has something to check: the common flags appear in many commands."""
        commands = defaultdict(set)
        for command, flag, _ in PARAMS:
            commands[flag].add(command)
        assert {"backfill", "tail", "verify"} <= commands["--include-insight"]
        assert {"backfill", "tail", "verify"} <= commands["--exclude"]
        assert 6 <= len(commands["--opensearch"])

    def test_the_exceptions_exist(self) -> None:
        """Each listed exception names a flag the command really has (the list does not rot)."""
        present = {(command, flag) for command, flag, _ in PARAMS}
        assert set() == set(DIFFERENT_MEANING) - present

    def test_every_parameter_has_help(self) -> None:
        """No option or argument is left without a help text (verify's --since once was)."""
        assert [] == [(c, f) for c, f, p in PARAMS if not p.help]

    def test_auth_user_is_the_basic_auth_user(self) -> None:
        """report principal's --auth-user is --user of the other commands under another flag:
        the same variable, and a help that says why the flag differs."""
        users = [p for c, f, p in PARAMS if f == "--user" and (c, f) not in DIFFERENT_MEANING]
        auth = [p for _, f, p in PARAMS if f == "--auth-user"]
        assert 1 == len(auth)
        assert {users[0].envvar} == {p.envvar for p in [*users, *auth]}
        assert auth[0].help.startswith(users[0].help)
        assert "--user is the IAM user" in auth[0].help
