"""Config loading: default.config (schema + defaults) <- bases <- run config <- --set overrides.

Every key a run may set is declared in config/default.config with a type tag in the comment line
above it (`# [int] ...`). Unknown keys, wrong types and missing required keys fail at load time,
before any work starts, with one line naming file:line, section and key.
"""
import difflib
import os
from pathlib import Path

from init.ini import parse_ini, read_ini
from utils.errors import ConfigError
from utils.paths import REPO_ROOT

DEFAULT_CONFIG = REPO_ROOT / "config" / "default.config"
REQUIRED = "<required>"
_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def _convert(kind, text):
    """Convert config text to the declared type; raise ValueError with the reason."""
    if kind == "str":
        return text
    if kind in ("int", "float"):
        try:
            return int(text) if kind == "int" else float(text)
        except ValueError:
            raise ValueError("expected an integer" if kind == "int" else "expected a number") from None
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


def _type_tag(comment):
    """Return the type tag of a default.config comment line such as '[int] number of epochs'."""
    if comment.startswith("[") and "]" in comment:
        return comment[1: comment.index("]")]
    return None


def load_schema(path=DEFAULT_CONFIG):
    """{section: {key: (type, default_text, comment)}} from default.config."""
    schema = {}
    for section, entries in read_ini(path).items():
        for key, entry in entries.items():
            kind = _type_tag(entry.comment)
            if kind is None:
                raise ConfigError(f"{entry.where}: [{section}] {key}: default.config needs a '# [type] comment' line above it")
            schema.setdefault(section, {})[key] = (kind, entry.value, entry.comment[len(kind) + 2:].strip())
    return schema


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
            for key, (kind, default, _) in keys.items():
                self.values[(section, key)] = None if default == REQUIRED else _convert(kind, default)
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
        kind = self.schema[section][key][0]
        try:
            self.values[(section, key)] = _convert(kind, text)
        except ValueError as err:
            raise ConfigError(f"{where}: [{section}] {key} = {text!r}: {err}") from None
        self.sources[(section, key)] = where

    def set(self, section, key, value):
        """Programmatic override (pipelines); the value is given as config text or a typed value."""
        text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value).lower() if isinstance(value, bool) else str(value)
        self.set_text(section, key, text, "pipeline")

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

    def to_ini(self):
        """The resolved config as INI text, each value annotated with where it came from."""
        lines = [f"# resolved from {self.path}"]
        for section, keys in self.schema.items():
            lines.append(f"\n[{section}]")
            for key in keys:
                if (section, key) == ("config", "base"):  # already applied: the file stands alone
                    lines.append(f"# inherited from {self.values[(section, key)] or 'no base'} (applied above)\n{key} =")
                    continue
                value = self.values[(section, key)]
                text = ",".join(map(str, value)) if isinstance(value, list) else str(value).lower() if isinstance(value, bool) else "" if value is None else str(value)
                lines.append(f"# from {self.sources[(section, key)]}\n{key} = {text}")
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
    return config
