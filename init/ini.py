"""A small INI reader that remembers file:line for every key, so config errors can point at them.

configparser loses line numbers and interpolates '%' and '$'; we need neither.
"""
from utils.errors import ConfigError


class Entry:
    """One `key = value` with where it came from (`file:line`) and the comment lines above it."""

    __slots__ = ("value", "where", "comment")

    def __init__(self, value, where, comment=""):
        self.value, self.where, self.comment = value, where, comment


def parse_ini(text, source):
    """Parse INI text into {section: {key: Entry}}; `source` names the file in errors."""
    sections, current, comments = {}, None, []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        where = f"{source}:{lineno}"
        if not line:
            comments = []
            continue
        if line[0] in "#;":
            comments.append(line[1:].strip())
            continue
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise ConfigError(f"{where}: malformed section header {line!r}")
            current = line[1:-1].strip()
            if current in sections:
                raise ConfigError(f"{where}: section [{current}] appears twice")
            sections[current] = {}
            comments = []
            continue
        if "=" not in line:
            raise ConfigError(f"{where}: expected 'key = value', got {line!r}")
        if current is None:
            raise ConfigError(f"{where}: key outside any [section]")
        key, value = (part.strip() for part in line.split("=", 1))
        if not key:
            raise ConfigError(f"{where}: empty key")
        if key in sections[current]:
            raise ConfigError(f"{where}: [{current}] {key}: set twice in one file")
        sections[current][key] = Entry(value, where, comments[-1] if comments else "")
        comments = []
    return sections


def read_ini(path):
    """Parse an INI file; a missing or non-UTF-8 file is a one-line ConfigError."""
    try:
        text = open(path, encoding="utf-8").read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as err:
        line = err.object[: err.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not valid UTF-8") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config ({err.strerror})") from None
    return parse_ini(text, path)
