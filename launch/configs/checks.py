"""The rules config sections state about themselves (called from their __post_init__), each raising one line:
a floor per count, a range per fraction, a choice per registry (the dict or tuple that implements the choice)."""

from __future__ import annotations

from driver.cli import UserError


def at_least(section: str, obj, **floors) -> None:
    """`key=floor` or `key=(floor, why)`: obj.key >= floor (`section` "": top-level keys)."""
    for key, rule in floors.items():
        floor, why = rule if isinstance(rule, tuple) else (rule, "")
        value = getattr(obj, key)
        if value < floor:
            raise UserError(f"{_full(section, key)} must be >= {floor}{f' ({why})' if why else ''}, got {value}")


def above(section: str, obj, **floors) -> None:
    """`key=floor`: obj.key > floor."""
    for key, floor in floors.items():
        if not getattr(obj, key) > floor:
            raise UserError(f"{_full(section, key)} must be > {floor}, got {getattr(obj, key)}")


def _full(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def fraction(key: str, value: float, low_open: bool = False) -> None:
    if not (0 < value <= 1 if low_open else 0 <= value <= 1):
        raise UserError(f"{key} is a fraction in {'(0' if low_open else '[0'}, 1], got {value}")


def one_of(key: str, value, registry) -> None:
    """`value` must name an entry of `registry` (the dict or tuple of what implements the choice)."""
    if value not in registry:
        raise UserError(f"{key} {value!r} is not one of: {', '.join(str(k) for k in registry)}")
