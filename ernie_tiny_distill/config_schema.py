"""Typed reading of a dataclass tree: YAML files and `a.b=c` overrides in, pydantic checks, one-line errors out."""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import types
import typing
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, TypeAdapter, ValidationError

from ernie_tiny_distill.errors import UserError, location

# Strict types (no "1" for an int, no 1 for a bool), no unknown keys, no NaN/inf; JSON input lets a section be a
# mapping under strict mode.
PYDANTIC_CONFIG = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


# ---------------------------------------------------------------- YAML


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and reads 1e-5 as a number (PyYAML's YAML 1.1 reads it as text)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                where = location(key_node.start_mark.name, line)
                raise UserError(f"duplicate config key {key!r} (first set on line {seen[key]})", where=where)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _scientific(loader: yaml.SafeLoader, node) -> Any:
    value = float(loader.construct_scalar(node))
    return int(value) if value.is_integer() and abs(value) < 2 ** 63 else value


_SCIENTIFIC = re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$")
_ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:sci", _SCIENTIFIC, list("-+.0123456789"))
_ConfigLoader.add_constructor("tag:yaml.org,2002:sci", _scientific)


def parse_yaml(text: str, name: str = "<override>") -> Any:
    loader = _ConfigLoader(text)
    loader.name = name
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml_file(path: str) -> dict[str, Any]:
    """A config file's top-level mapping; missing, non-UTF-8, malformed or duplicate-key files are one-line errors."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file not found: {path}")
    data = p.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise UserError(f"not UTF-8 text (byte {data[e.start]:#04x}); save the config as UTF-8",
                        where=location(str(path), line)) from None
    try:
        raw = parse_yaml(text, str(path)) or {}
    except yaml.YAMLError as e:
        raise UserError(f"not valid YAML: {' '.join(str(e).split())}", where=str(path)) from None
    if not isinstance(raw, dict):
        raise UserError("expected a mapping of config keys at the top level", where=str(path))
    return raw


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> None:
    """Set each `a.b=c` (c read as YAML) in raw, creating sections as needed."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"override {item!r} is not of the form key=value (e.g. train.epochs=2)")
        try:
            parsed = parse_yaml(value) if value.strip() else ""
        except yaml.YAMLError:
            parsed = value
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UserError(f"cannot set {key.strip()!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = parsed


# ---------------------------------------------------------------- typed validation


def suggest(word: str, allowed: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, allowed, n=1, cutoff=0.5)
    return f"did you mean {close[0]!r}? " if close else ""


def choice_error(key: str, value: Any, choices: Sequence[str]) -> UserError:
    return UserError(f"config key {key!r} must be one of {', '.join(choices)}; got {value!r}. "
                     f"{suggest(str(value), choices)}".rstrip())


_UNIONS = (typing.Union, types.UnionType)


def type_name(hint) -> str:
    origin = typing.get_origin(hint)
    if origin in _UNIONS:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return " or ".join(type_name(a) for a in args) + " or null"
    if origin in (list, list):
        return f"list of {type_name(typing.get_args(hint)[0])}"
    if dataclasses.is_dataclass(hint):
        return "section"
    return getattr(hint, "__name__", str(hint))


def sections(cls) -> list[type]:
    """cls and every dataclass reachable through its fields."""
    found = [cls]
    for hint in typing.get_type_hints(cls).values():
        if dataclasses.is_dataclass(hint):
            found += [c for c in sections(hint) if c not in found]
    return found


@cache
def _adapter(cls) -> TypeAdapter:
    for section in sections(cls):
        section.__pydantic_config__ = PYDANTIC_CONFIG
    return TypeAdapter(cls)


def _key(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _lookup(raw: Any, loc: tuple) -> Any:
    for part in loc:
        raw = raw[part]
    return raw


def _hint_at(cls, loc: tuple):
    hint = cls
    for part in loc:
        if isinstance(part, int):
            hint = typing.get_args(hint)[0]
            continue
        hint = typing.get_type_hints(hint)[part]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if typing.get_origin(hint) in _UNIONS and len(args) == 1:
            hint = args[0]
    return hint


_EXPECTED = {"int": "an integer", "bool": "true or false", "float": "a number", "string": "a string",
             "finite_number": "a finite number"}


def _message(cls, raw: dict, error: dict, unknown_section: str = "") -> str:
    loc, kind = tuple(error["loc"]), error["type"]
    key = _key(loc)
    if kind == "unexpected_keyword_argument":
        allowed = [f.name for f in dataclasses.fields(_hint_at(cls, loc[:-1]))]
        close = suggest(str(loc[-1]), allowed)
        if unknown_section and not close and isinstance(_lookup(raw, loc), dict):  # a whole section, no typo
            return f"unknown config key {key!r}: {unknown_section}"
        return f"unknown config key {key!r}; {close}allowed keys here: {', '.join(allowed)}"
    value = _lookup(raw, loc)
    if kind == "dataclass_type":
        return f"config key {key or '<top>'!r} must be a section (mapping), got {value!r}"
    expected = _EXPECTED.get(kind.rsplit("_", 1)[0] if kind != "finite_number" else kind)
    if kind in ("list_type", "int_from_float") or expected is None:
        hint = _hint_at(cls, loc)
        expected = _EXPECTED.get(type_name(hint).replace("str", "string")) or f"a {type_name(hint)}"
    return f"config key {key!r} must be {expected}, got {value!r}"


Parser = Callable[[Any, str], Any]


def build(cls, raw: Any, parsers: dict[str, Parser], unknown_section: str = ""):
    """An instance of the dataclass cls from raw (nested dicts): types checked by pydantic, choices from field
    metadata, `parse` fields through parsers[name](value, key), `required` fields present and non-empty. An
    unknown key holding a mapping (not a typo of a known key) is explained by `unknown_section` when given."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"config key '<top>' must be a section (mapping), got {raw!r}")
    raw = _drop_empty_sections(cls, raw)
    try:
        obj = _adapter(cls).validate_json(json.dumps(raw, default=str))
    except ValidationError as e:
        errors = sorted(e.errors(), key=lambda err: err["type"] != "unexpected_keyword_argument")
        raise UserError(_message(cls, raw, errors[0], unknown_section)) from None
    _finish(obj, raw, "", parsers)
    return obj


def _drop_empty_sections(cls, raw: dict) -> dict:
    """`train:` with nothing below it (YAML null) means the section's defaults."""
    hints = typing.get_type_hints(cls)
    out = {}
    for name, value in raw.items():
        hint = hints.get(name)
        if hint is not None and dataclasses.is_dataclass(hint):
            if value is None:
                continue
            if isinstance(value, dict):
                value = _drop_empty_sections(hint, value)
        out[name] = value
    return out


def _finish(obj, raw: dict, prefix: str, parsers: dict[str, Parser]) -> None:
    for f in dataclasses.fields(obj):
        key, value = prefix + f.name, getattr(obj, f.name)
        if f.metadata.get("required") and value in (None, ""):
            raise UserError(f"missing required config key {key!r}")
        if dataclasses.is_dataclass(value):
            _finish(value, raw.get(f.name) or {}, key + ".", parsers)
        elif "parse" in f.metadata and f.name in raw:
            setattr(obj, f.name, parsers[f.metadata["parse"]](raw[f.name], key))
        elif f.metadata.get("choices") and value not in f.metadata["choices"]:
            raise choice_error(key, value, f.metadata["choices"])


def finite_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
