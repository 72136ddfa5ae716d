"""The configuration file: TOML with the same names as the command-line options.

    # ~/.config/ct-ingest/config.toml (or --config FILE, or CT_INGEST_CONFIG)
    opensearch = "https://search-audit.eu-west-1.es.amazonaws.com"
    aws-auth = "es"
    aws-region = "eu-west-1"

    [backfill]
    concurrency = 64

    [tail]
    poll-interval = 30

    [report.clickops]
    top = 50

Top-level keys apply to every command that has the option; a ``[command]`` (or
``[group.command]``) table to that command only. Precedence: command line > environment
(``CT_INGEST_*``) > file > built-in default, which is click's own order for ``default_map``.
Unknown keys and values of the wrong type are errors that name the key.

:func:`effective_options` answers ``ct-ingest config show``: every option of a command with its
effective value and where it came from.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ingest.errors import ConfigError

__all__ = ["default_config_path", "effective_options", "load_default_map", "resolve_path"]


def default_config_path(env: Mapping[str, str]) -> Path:
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "ct-ingest" / "config.toml"


# Typer ships its own copy of click, so the command objects are recognised by what they do.


def _commands(group: Any, ctx: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if hasattr(cmd, "list_commands"):
            yield from _commands(cmd, ctx, f"{prefix}{name}.")
        elif cmd is not None:
            yield f"{prefix}{name}", cmd


def _options(cmd: Any) -> dict[str, Any]:
    return {
        p.name: p for p in cmd.params if getattr(p, "param_type_name", "") == "option" and p.name
    }


def _check(path: Path, where: str, key: str, value: Any, param: Any, ctx: Any) -> Any:
    if isinstance(value, dict):
        raise ConfigError(f"config {path}: {where}{key}: expected a value, got a table")
    try:
        param.process_value(ctx, value)
    except Exception as exc:  # click's BadParameter, from typer's own copy of click
        message = getattr(exc, "message", str(exc))
        raise ConfigError(f"config {path}: {where}{key}: {message}") from None
    return value


def load_default_map(path: Path, group: Any, ctx: Any) -> dict[str, Any]:
    """A click ``default_map`` from the TOML file at ``path``, validated against ``group``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"config {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path}: not valid TOML: {exc}") from None
    commands = dict(_commands(group, ctx))
    shared = {k: v for k, v in data.items() if not isinstance(v, dict)}
    sections: dict[str, dict[str, Any]] = {}
    for k, v in data.items():
        if isinstance(v, dict):
            for sub_k, sub_v in v.items():
                if isinstance(sub_v, dict):  # [report.clickops]
                    sections[f"{k}.{sub_k}"] = sub_v
                else:
                    sections.setdefault(k, {})[sub_k] = sub_v
    for name in sections:
        if name not in commands:
            raise ConfigError(
                f"config {path}: unknown section [{name}] (commands: {', '.join(sorted(commands))})"
            )
    for key, value in shared.items():
        pname = key.replace("-", "_")
        params = [opts[pname] for opts in map(_options, commands.values()) if pname in opts]
        if not params:
            raise ConfigError(f"config {path}: unknown key {key!r}")
        _check(path, "", key, value, params[0], ctx)
    default_map: dict[str, Any] = {}
    for name, cmd in commands.items():
        opts = _options(cmd)
        values = {k.replace("-", "_"): v for k, v in shared.items() if k.replace("-", "_") in opts}
        for key, value in sections.get(name, {}).items():
            pname = key.replace("-", "_")
            if pname not in opts:
                raise ConfigError(f"config {path}: [{name}] {key}: unknown key for this command")
            values[pname] = _check(path, f"[{name}] ", key, value, opts[pname], ctx)
        if values:
            node = default_map
            *parents, leaf = name.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = values
    return default_map


def resolve_path(explicit: Path | None, env: Mapping[str, str]) -> Path | None:
    """``--config``/``CT_INGEST_CONFIG`` if given (it must exist), else the default if present.
    ``env`` is the environment the CLI passes (nothing here reads ``os.environ``)."""
    if explicit is not None:
        return explicit
    candidate = default_config_path(env)
    return candidate if candidate.is_file() else None


_SECRET_HINTS = ("password", "webhook", "token", "secret")


def effective_options(
    root: Any, command: str, args: Sequence[str], env: Mapping[str, str]
) -> list[tuple[str, Any, str]]:
    """(option, value, where from) for every option of ``command`` (``report.clickops`` for one
    of a group), as if run with ``args``: from the command line, the environment (``env {VAR}``),
    the config file (``config {PATH}``) or the default; secrets masked, and the password of
    ``CT_INGEST_PASSWORD`` in ``env`` last. ``root`` is the root click context, whose
    ``default_map`` holds the file's values and ``meta["config_path"]`` its path."""
    *groups, name = command.split(".")
    cmd: Any = root.command
    for part in command.split("."):
        cmd = cmd.get_command(root, part) if hasattr(cmd, "get_command") else None
        if cmd is None:
            raise ConfigError(f"no command {command!r}")
    default_map = root.default_map or {}
    for part in groups:
        default_map = default_map.get(part, {})
    sub = cmd.make_context(
        name, list(args), parent=root, resilient_parsing=True, default_map=default_map.get(name)
    )
    path = root.meta.get("config_path")
    rows = []
    for param in cmd.params:
        if not getattr(param, "opts", None) or param.name in ("help",):
            continue
        source = getattr(sub.get_parameter_source(param.name), "name", "DEFAULT")
        where = "default"
        if source == "COMMANDLINE":
            where = "command line"
        elif source == "ENVIRONMENT":
            where = f"env {param.envvar}" if isinstance(param.envvar, str) else "env"
        elif source == "DEFAULT_MAP":
            where = f"config {path}"
        value = sub.params.get(param.name)
        if value is None and getattr(param, "secondary_opts", None):
            value = "auto"  # a --x/--no-x flag left unset: decided at run time (--gzip)
        if value is not None and any(h in param.name for h in _SECRET_HINTS):
            value = "*****"
        rows.append((param.opts[0], value, where))
    password = env.get("CT_INGEST_PASSWORD")
    where = "env CT_INGEST_PASSWORD" if password else "unset"
    rows.append(("(password)", "*****" if password else None, where))
    return rows
