"""Command-line configs: an OmegaConf structured config + `key=value` dotlist overrides.

User errors (unknown key, wrong type, malformed override, a value a config section's own checks refuse) exit with
a one-line message naming what is valid, never a traceback. `--help` prints every key with its default.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException


class UserError(Exception):
    """A mistake in what the user asked for: reported as one line, exit code 2."""


def _keys(schema, prefix: str = "") -> list[tuple[str, object]]:
    out = []
    for f in dataclasses.fields(schema):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "???")
        if dataclasses.is_dataclass(default):
            out += _keys(type(default), f"{prefix}{f.name}.")
        else:
            out.append((prefix + f.name, default))
    return out


def usage(schema, prog: str, doc: str) -> str:
    lines = [f"usage: python {prog} [key=value ...]", "", doc.strip(), "", "keys (default):"]
    lines += [f"  {k} ({v!r})" for k, v in _keys(schema)]
    return "\n".join(lines)


def load_yaml(path: str):
    if not Path(path).is_file():
        raise UserError(f"config file {path!r} not found")
    try:
        return OmegaConf.load(path)
    except Exception as e:  # the user's file: a YAML syntax error is theirs
        raise UserError(f"config file {path!r} is not valid YAML: {str(e).splitlines()[0]}") from None


def parse_config(schema, argv: list[str], prog: str, doc: str = "", saved: str | None = None):
    """Defaults of `schema`, then the YAML file `saved` (a resumed run's config), then the YAML files named by
    `config=<file>` arguments (e.g. launch/configs/janus_pro_7b.yaml), then `key=value` overrides; returns an
    OmegaConf object of that type whose every section passed its own checks (the dataclasses' __post_init__,
    which raise UserError) and the schema's cross-field check."""
    if any(a in ("-h", "--help") for a in argv):
        print(usage(schema, prog, doc))
        raise SystemExit(0)
    valid = ", ".join(k for k, _ in _keys(schema))
    bad = [a for a in argv if "=" not in a or a.startswith("=")]
    if bad:
        raise UserError(f"override {bad[0]!r} is not key=value; valid keys: {valid}")
    base = OmegaConf.structured(schema)
    files = [a.split("=", 1)[1] for a in argv if a.startswith("config=")]
    argv = [a for a in argv if not a.startswith("config=")]
    try:
        layers = ([OmegaConf.load(saved)] if saved else []) + [load_yaml(f) for f in files]
        cfg = OmegaConf.merge(base, *layers, OmegaConf.from_dotlist(argv))
    except ConfigKeyError as e:
        key = getattr(e, "full_key", None) or str(e).split("\n")[0]
        raise UserError(f"unknown config key {key!r}; valid keys: {valid}") from None
    except OmegaConfBaseException as e:
        raise UserError(f"bad config value: {str(e).splitlines()[0]} (see --help for keys and types)") from None
    OmegaConf.to_object(cfg)  # builds the dataclasses: each section checks itself, then the whole (cross-field)
    return cfg


def own_args(argv: list[str], defaults: dict[str, str]) -> dict[str, str]:
    """`key=value` arguments of an entry point with its own few keys (not a config schema): `defaults` updated,
    anything else a UserError naming the keys."""
    args = dict(defaults)
    for arg in argv:
        key, sep, value = arg.partition("=")
        if key not in args or not sep:
            raise UserError(f"unknown argument {arg!r}: expected key=value with key one of {', '.join(args)}")
        args[key] = value
    return args


def run_main(main, argv: list[str] | None = None) -> None:
    """Run `main(argv)`, turning UserError into a one-line message and exit code 2, a run stopped by its health
    guard into one and exit code 3, and an actor lost for good (e.g. its node gone, no room left) into one and
    exit code 4."""
    import signal

    from actors.placement import ActorNotBack
    from rollout.health import RunUnhealthy
    # `kill <pid>` (SIGTERM) unwinds like Ctrl-C: the job's actors are shut down and a local Ray cluster stopped,
    # instead of orphaned actors working on for a dead driver
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        main(sys.argv[1:] if argv is None else argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except RunUnhealthy as e:
        print(f"error: run stopped by its health guard: {e}; metrics.jsonl and the checkpoints so far are kept",
              file=sys.stderr)
        raise SystemExit(3) from None
    except ActorNotBack as e:
        print(f"error: {e}; metrics.jsonl and the checkpoints so far are kept: run.resume=auto goes on once the "
              f"cluster has room", file=sys.stderr)
        raise SystemExit(4) from None
