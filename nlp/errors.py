"""User-facing errors.

A :class:`BarometreError` is a problem the user can fix (a bad argument, a malformed config or
lexicon file, a missing corpus): the CLI prints its message alone and exits with code 1.
Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class BarometreError(Exception):
    """An error whose message is meant for the user (exit code 1, no traceback)."""


class ConfigError(BarometreError):
    """A settings file or command-line value is invalid."""


class RegistryError(ConfigError):
    """The metropolis registry (YAML) is invalid; the message names file, entry and field."""


class LexiconError(ConfigError):
    """A theme lexicon is invalid; the message names the file and the term."""


class StoreError(BarometreError):
    """The corpus store cannot be opened or is from an unknown future schema."""
