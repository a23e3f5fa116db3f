"""A small typed schema for TOML input files: sections of keys with a type, a default, a help
line and a value check; validation that names the key and the fix; reference tables for docs.

Used by the campaign file (``glassdist.spec``) and the cluster profiles (``hpc.profile``).
Every problem is raised through the caller's error class, called as ``error(key, problem, fix)``.
Numbers are finite and at most 1e15 in magnitude, integers fit in 64 bits: TOML allows ``inf``,
``nan`` and integers of any size, none of which a run can use, and no input quantity in natural
units is larger than 1e15 (larger ones are typos that overflow what is derived from them).
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import tomllib
from dataclasses import dataclass
from typing import Any, Callable

REQUIRED = object()
INT64 = 2**63
MAX_MAGNITUDE = 1e15


@dataclass(frozen=True)
class Type:
    """A value type: its name (in messages and docs) and a test that returns a problem or None."""

    name: str
    problem: Callable[[Any], str | None]
    word: str = ""  # a type made by word_or: the word ...
    alternative: "Type | None" = None  # ... or a value of this type

    def __str__(self) -> str:
        return self.name


def word_or(word: str, other: Type) -> Type:
    """The string ``word`` or a value of type ``other`` (e.g. "auto" or a list of numbers)."""
    return Type(f"{word!r} or {other}", lambda v: None if v == word else other.problem(v), word, other)


def _int_problem(v) -> str | None:
    if not isinstance(v, int) or isinstance(v, bool):
        return "not an integer"
    return None if -INT64 <= v < INT64 else "does not fit in 64 bits"


def _number_problem(v) -> str | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "not a number"
    if isinstance(v, float) and not math.isfinite(v):
        return "not finite"
    return None if abs(v) <= MAX_MAGNITUDE else f"larger than {MAX_MAGNITUDE:g} in magnitude"


def _list_of(item: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    def problem(v):
        if not isinstance(v, list):
            return "not a list"
        return next((f"entry {i}: {p}" for i, x in enumerate(v) if (p := item(x))), None)

    return problem


def _str_problem(v) -> str | None:
    return None if isinstance(v, str) else "not a string"


def _bool_problem(v) -> str | None:
    return None if isinstance(v, bool) else "not a boolean"


INT = Type("integer", _int_problem)
NUMBER = Type("number", _number_problem)
STRING = Type("string", _str_problem)
BOOL = Type("bool", _bool_problem)
NUMBERS = Type("list of numbers", _list_of(_number_problem))
INTS = Type("list of integers", _list_of(_int_problem))
STRINGS = Type("list of strings", _list_of(_str_problem))
MATRIX = Type("matrix of numbers", _list_of(_list_of(_number_problem)))
NUMBER_TABLE = Type(
    "table of numbers",
    lambda v: (
        "not a table"
        if not isinstance(v, dict)
        else next((f"{k}: {p}" for k, x in v.items() if (p := _number_problem(x))), None)
    ),
)


@dataclass(frozen=True)
class Key:
    """One key: its type, default (REQUIRED: none), one help line and a value check
    (``check(value) -> problem or None``, called after the type test)."""

    type: Type
    default: Any = REQUIRED
    help: str = ""
    check: Callable[[Any], str | None] | None = None


# ---- value checks: value -> problem or None ----------------------------------------------------
def positive(v):
    return None if v > 0 else "must be > 0"


def non_negative(v):
    return None if v >= 0 else "must be >= 0"


def at_least(n):
    return lambda v: None if v >= n else f"must be >= {n}"


def at_most(n):
    return lambda v: None if v <= n else f"must be <= {n}"


def non_empty(v):
    return None if len(v) else "must not be empty"


def distinct(v):
    return None if len(set(v)) == len(v) else "entries must be distinct"


def between(lo, hi):
    return lambda v: None if lo <= v <= hi else f"must be in [{lo}, {hi}]"


def one_of(*options):
    return lambda v: None if v in options else f"must be one of {', '.join(map(repr, options))}"


def all_positive(v):
    return None if all(x > 0 for x in v) else "every entry must be > 0"


def all_non_negative(v):
    return None if all(x >= 0 for x in v) else "every entry must be >= 0"


def unless(word: str, check):
    """``check`` for every value but the string ``word`` (the keys of a word_or type)."""
    return lambda v: None if v == word else check(v)


def table_of(keys: tuple[str, ...], check):
    """A table with exactly ``keys``, each value passing ``check``."""

    def problem(v):
        if sorted(v) != sorted(keys):
            return f"needs exactly the keys {', '.join(keys)}"
        return next((f"{k}: {p}" for k in keys if (p := check(v[k]))), None)

    return problem


def all_of(*checks):
    """Several checks; the first problem wins."""
    return lambda v: next((p for c in checks if (p := c(v))), None)


# ---- parsing and validation ----------------------------------------------------------------------
def parse_toml(text: str | bytes, source: str, error) -> dict:
    """TOML text (bytes: UTF-8) -> dict; bad bytes or syntax name ``source`` and the line."""
    try:
        return tomllib.loads(text.decode() if isinstance(text, bytes) else text)
    except UnicodeDecodeError:
        raise error(source, "is not UTF-8 text", "save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(source, f"is not valid TOML ({exc})", "fix the syntax at the line given") from None


def validate_section(given: Any, keys: dict[str, Key], name: str, error) -> dict:
    """One section (a TOML table) against ``keys``: unknown and missing keys, types, checks;
    defaults filled in, numbers as floats. Returns a new dict."""
    if not isinstance(given, dict):
        raise error(name, "must be a table", f"write it as [{name}]")
    for key in given:
        if key not in keys:
            close = difflib.get_close_matches(key, list(keys), n=1, cutoff=0.75)
            hint = f"did you mean '{name}.{close[0]}'?" if close else f"known keys in [{name}]: {', '.join(keys)}"
            raise error(f"{name}.{key}", "unknown key", f"remove it; {hint}")
    out = {}
    for key, entry in keys.items():
        full = f"{name}.{key}"
        if key in given:
            value = given[key]
        elif entry.default is REQUIRED:
            raise error(full, "is missing", f"add '{key} = ...' under [{name}] ({entry.help})")
        else:
            value = copy.deepcopy(entry.default)
        if problem := entry.type.problem(value):
            article = "an" if str(entry.type)[0] in "aeiou" else "a"
            raise error(
                full,
                f"must be {article} {entry.type}, got {value!r} ({problem})",
                f"set it to {article} {entry.type} ({entry.help})",
            )
        if entry.type is NUMBER:
            value = float(value)
        if entry.check and (problem := entry.check(value)):
            raise error(full, f"{problem}, got {value!r}", f"give a valid value ({entry.help})")
        out[key] = value
    return out


def validate(
    data: Any,
    schema: dict[str, dict[str, Key]],
    error,
    *,
    source: str = "<file>",
    fix: str = "",
    extra: tuple[str, ...] = (),
) -> dict:
    """A whole file: ``{section: {key: value}}`` for every section of ``schema``. Sections named
    in ``extra`` are allowed and left to the caller (not in the result)."""
    if not isinstance(data, dict):
        raise error(source, "is not a TOML table", fix or "start from a shipped example")
    known = [*schema, *extra]
    for section in data:
        if section not in known:
            raise error(section, "unknown section", f"remove it; known sections: {', '.join(known)}")
    return {section: validate_section(data.get(section, {}), keys, section, error) for section, keys in schema.items()}


# ---- rendering ----------------------------------------------------------------------------------
def toml_value(value) -> str:
    """A value as one line of TOML (arrays inline)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


def reference_table(keys: dict[str, Key]) -> list[str]:
    """Markdown table lines of one section: key, type, default, help."""
    out = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, k in keys.items():
        default = "required" if k.default is REQUIRED else f"`{toml_value(k.default)}`"
        out.append(f"| `{key}` | {k.type} | {default} | {k.help} |")
    return out
