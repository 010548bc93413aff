"""Config loading: default.config (schema + defaults) <- bases <- run config <- --set overrides.

Every key a run may set is declared in config/default.config with a tag in the comment line above it
(`# [int >= 1; resumable] ...`: type, allowed range, flags; the grammar is in that file's header).
Unknown keys, wrong types, values out of range and missing required keys fail at load time, before any
work starts, with one line naming file:line, section and key.
"""
import difflib
import math
import operator
import os
from pathlib import Path
from typing import NamedTuple

from init.ini import parse_ini, read_ini
from utils.errors import ConfigError
from utils.paths import REPO_ROOT, repo_relative

DEFAULT_CONFIG = REPO_ROOT / "config" / "default.config"
REQUIRED = "<required>"
_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def _convert(kind, text):
    """Convert config text to the declared type; raise ValueError with the reason."""
    if kind == "str":
        return text
    if kind in ("int", "float"):
        try:
            value = int(text) if kind == "int" else float(text)
        except ValueError:
            raise ValueError("expected an integer" if kind == "int" else "expected a number") from None
        if not math.isfinite(value):  # float('nan') parses, and compares false with every bound
            raise ValueError("expected a finite number")
        return value
    if kind == "bool":
        low = text.lower()
        if low in _TRUE or low in _FALSE:
            return low in _TRUE
        raise ValueError("expected true or false")
    if kind == "list":
        return [x.strip() for x in text.split(",") if x.strip()]
    if kind in ("intlist", "floatlist"):
        return [_convert(kind[:-4], x) for x in _convert("list", text)]
    if kind.startswith("choice:"):
        options = kind[len("choice:"):].split("|")
        if text not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return text
    raise ValueError(f"unknown type tag [{kind}] in default.config")


NUMERIC = ("int", "float", "intlist", "floatlist")
FLAGS = ("resumable",)
_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "=": operator.eq}


class Range:
    """The values a numeric key allows, as default.config declares them: 'any', or alternatives joined by 'or',
    each a comma-separated list of conditions that must all hold ('>= 1', '> 0', '0..1', a bare number)."""

    def __init__(self, text):
        self.text, self.alternatives = text, []
        if text == "any":
            return
        for alternative in text.split(" or "):
            self.alternatives.append([c for part in alternative.split(",") for c in self._conditions(part.strip())])

    @staticmethod
    def _conditions(part):
        """[(op, bound)] of one condition; ValueError names what could not be read."""
        def number(text):  # ints stay ints: a float bound of 2**64 - 1 would round up and let 2**64 in
            text = text.strip()
            return int(text) if text.lstrip("-").isdigit() else float(text)
        try:
            if ".." in part:
                low, high = part.split("..")
                return [(">=", number(low)), ("<=", number(high))]
            op = next((o for o in (">=", "<=", ">", "<") if part.startswith(o)), "=")
            return [(op, number(part if op == "=" else part[len(op):]))]
        except ValueError:
            raise ValueError(f"unreadable range condition {part!r}") from None

    def contains(self, value):
        return not self.alternatives or any(all(_OPS[op](value, bound) for op, bound in alt) for alt in self.alternatives)


class Spec(NamedTuple):
    """One declared key: its type, default text, meaning, allowed range (numeric types, else None), resumable flag."""
    kind: str
    default: str
    meaning: str
    range: "Range | None"
    resumable: bool


def _tag(comment):
    """The '[...]' tag opening a default.config comment line, or None."""
    if comment.startswith("[") and "]" in comment:
        return comment[1: comment.index("]")]
    return None


def parse_spec(comment, value):
    """Spec of one default.config entry from its comment line '[type range; flag] meaning' (ValueError: why not)."""
    tag = _tag(comment)
    if tag is None:
        raise ValueError("needs a '# [type] meaning' comment line above it")
    head, *flags = [part.strip() for part in tag.split(";")]
    kind, _, range_text = head.partition(" ")
    unknown = [f for f in flags if f not in FLAGS]
    if unknown:
        raise ValueError(f"unknown flag {unknown[0]!r} in [{tag}] (known: {', '.join(FLAGS)})")
    if (kind in NUMERIC) != bool(range_text.strip()):
        raise ValueError(f"[{tag}]: numeric types declare a range ('>= 0', '0..1', 'any'), other types none")
    bounds = Range(range_text.strip()) if kind in NUMERIC else None
    return Spec(kind, value, comment[len(tag) + 2:].strip(), bounds, "resumable" in flags)


def load_schema(path=DEFAULT_CONFIG):
    """{section: {key: Spec}} from default.config; every default must fit its own type and range."""
    schema = {}
    for section, entries in read_ini(path).items():
        for key, entry in entries.items():
            try:
                spec = parse_spec(entry.comment, entry.value)
                if entry.value != REQUIRED:
                    _checked(spec, entry.value)
            except ValueError as err:
                raise ConfigError(f"{entry.where}: [{section}] {key}: default.config: {err}") from None
            schema.setdefault(section, {})[key] = spec
    return schema


def _checked(spec, text):
    """The typed value of config text, within its declared range (ValueError: why not)."""
    value = _convert(spec.kind, text)
    if spec.range is not None and not all(spec.range.contains(v) for v in (value if isinstance(value, list) else [value])):
        raise ValueError(f"out of range, expected {'each ' if isinstance(value, list) else ''}{spec.range.text}")
    return value


def render(value):
    """A typed value as config text (the inverse of _convert)."""
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) else "" if value is None else str(value)


def closest(word, options):
    """The closest option to a misspelt word, or None."""
    hits = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return hits[0] if hits else None


class Config:
    """Typed, validated config values with the source of each (file:line, default or --set)."""

    def __init__(self, schema, path=None):
        self.schema, self.path = schema, path
        self.values, self.sources = {}, {}
        for section, keys in schema.items():
            for key, spec in keys.items():
                self.values[(section, key)] = None if spec.default == REQUIRED else _convert(spec.kind, spec.default)
                self.sources[(section, key)] = "default"

    def _check_key(self, section, key, where):
        if section not in self.schema:
            hint = closest(section, self.schema)
            raise ConfigError(f"{where}: unknown section [{section}]" + (f"; did you mean [{hint}]?" if hint else ""))
        if key not in self.schema[section]:
            hint = closest(key, self.schema[section])
            if hint:
                raise ConfigError(f"{where}: [{section}] {key}: unknown key; did you mean '{hint}'?")
            elsewhere = [f"[{s}] {key}" for s in self.schema if key in self.schema[s]]
            raise ConfigError(f"{where}: [{section}] {key}: unknown key" + (f"; it belongs in {elsewhere[0]}" if elsewhere else ""))

    def set_text(self, section, key, text, where):
        """Validate and store one value given as config text."""
        self._check_key(section, key, where)
        try:
            self.values[(section, key)] = _checked(self.schema[section][key], text)
        except ValueError as err:
            shown = text if str(err).startswith("out of range") else repr(text)
            raise ConfigError(f"{where}: [{section}] {key} = {shown}: {err}") from None
        self.sources[(section, key)] = where

    def set(self, section, key, value):
        """Programmatic override (pipelines); the value is given as config text or a typed value."""
        self.set_text(section, key, render(list(value) if isinstance(value, tuple) else value), "pipeline")

    def get(self, section, key):
        """A typed value; asking for an undeclared key is a programming error, named precisely."""
        if (section, key) not in self.values:
            raise ConfigError(f"[{section}] {key}: read by the code but not declared in config/default.config")
        return self.values[(section, key)]

    def source(self, section, key):
        return self.sources[(section, key)]

    def check_required(self):
        missing = [(s, k) for (s, k), v in self.values.items() if v is None]
        if missing:
            s, k = missing[0]
            raise ConfigError(f"{self.path}: [{s}] {k}: required key missing")

    def check_together(self):
        """Ranges that span two keys: a run must take at least one optimizer step."""
        if self.get("train", "epoch") == 0 and self.get("train", "max_steps") == 0:
            named = next((k for k in ("epoch", "max_steps") if self.source("train", k) != "default"), "epoch")
            where = self.source("train", named)
            raise ConfigError(("" if where == "default" else f"{where}: ") + "[train] epoch = 0 and max_steps = 0: "
                              "no training steps; set epoch >= 1 or max_steps >= 1")

    def texts(self):
        """{section: {key: value as config text}}: the values alone, without where they came from ([config] base,
        the files already applied, is where values came from, so it is left out)."""
        return {section: {key: render(self.values[(section, key)]) for key in keys if (section, key) != ("config", "base")}
                for section, keys in self.schema.items()}

    def to_ini(self):
        """The resolved config as INI text, each value annotated with where it came from."""
        lines = [f"# resolved from {self.path}"]
        for section, keys in self.schema.items():
            lines.append(f"\n[{section}]")
            for key in keys:
                if (section, key) == ("config", "base"):  # already applied: the file stands alone
                    lines.append(f"# inherited from {self.values[(section, key)] or 'no base'} (applied above)\n{key} =")
                    continue
                lines.append(f"# from {repo_relative(self.sources[(section, key)])}\n{key} = {render(self.values[(section, key)])}")
        return "\n".join(lines) + "\n"


def _apply_file(config, path, seen):
    """Apply a config file after its bases ([config] base, relative to the file)."""
    path = Path(path).resolve()
    if path in seen:
        raise ConfigError(f"{path}: config inheritance cycle")
    seen = seen | {path}
    sections = read_ini(path)
    base = sections.get("config", {}).get("base")
    if base is not None:
        for name in [b.strip() for b in base.value.split(",") if b.strip()]:
            _apply_file(config, path.parent / name, seen)
    for section, entries in sections.items():
        for key, entry in entries.items():
            config.set_text(section, key, entry.value, entry.where)


def parse_override(text):
    """'section.key=value' -> (section, key, value)."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError(f"--set {text}: expected section.key=value")
    lhs, value = text.split("=", 1)
    section, key = lhs.strip().rsplit(".", 1)
    return section.strip(), key.strip(), value.strip()


def load_config(path, overrides=(), schema=None):
    """Load, inherit, override and validate a run config; returns a Config."""
    config = Config(schema or load_schema(), path=os.path.relpath(path) if Path(path).is_absolute() else path)
    _apply_file(config, path, frozenset())
    for text in overrides:
        section, key, value = parse_override(text)
        config.set_text(section, key, value, f"--set {section}.{key}")
    config.check_required()
    config.check_together()
    return config


def load_config_text(text, overrides=(), name="<text>"):
    """Build a Config from INI text (tests and tools)."""
    config = Config(load_schema(), path=name)
    for section, entries in parse_ini(text, name).items():
        for key, entry in entries.items():
            config.set_text(section, key, entry.value, entry.where)
    for item in overrides:
        section, key, value = parse_override(item)
        config.set_text(section, key, value, f"--set {section}.{key}")
    config.check_required()
    config.check_together()
    return config


def is_pipeline(path):
    """Whether an INI file lists pipeline stages ([pipeline]) rather than one run's config."""
    return "pipeline" in read_ini(path)
