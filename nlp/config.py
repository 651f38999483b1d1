"""Settings of one run, built from layers (highest first): command-line flags, environment,
a ``--config`` file (YAML), packaged defaults. The result is passed explicitly to every stage;
no stage reads a module global.

Input: the flags the CLI parsed (a dict of non-None values), an optional config path, the
environment. Output: a :class:`Settings`. Errors (unknown key, wrong type, unreadable file)
raise :class:`~nlp.errors.ConfigError` naming the file and the key.
"""
from __future__ import annotations

import copy
import os
import re
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping


from nlp.errors import BarometreError, ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REGISTRY = REPO_ROOT / "crawler" / "metropoles.yaml"
DEFAULT_LEXICONS = REPO_ROOT / "lexicons"


def shared_data_dir() -> Path:
    """The project's test and evaluation data: ``$BAROMETRE_SHARED_DATA``, else
    ``../shared/data`` beside the repository. May not exist: callers skip cleanly."""
    env = os.environ.get("BAROMETRE_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def shared_repro_dir() -> Path:
    """The reproducers of past failures (``repro/`` beside the shared data folder). May not
    exist: the tests that replay them skip cleanly."""
    return shared_data_dir().parent / "repro"

# Environment variables recognised, and the setting each one sets.
ENV_VARS = {
    "BAROMETRE_CORPUS_DIR": "corpus_dir",
    "BAROMETRE_OUTPUTS_DIR": "outputs_dir",
    "BAROMETRE_REGISTRY": "registry",
    "BAROMETRE_LEXICONS": "lexicons_dir",
    "BAROMETRE_WORKERS": "workers",
    "BAROMETRE_SEED": "seed",
    "BAROMETRE_CONTACT": "crawl.contact",
    "BAROMETRE_SCHEDULER": "compute.scheduler",
}


@dataclass(frozen=True)
class Settings:
    """Everything a run needs, frozen once loaded (a changed value is a new object:
    ``dataclasses.replace``). Stage sections (``crawl``, ``extract``, ...) are dicts of keyword
    arguments for that stage's own settings dataclass, checked against its types when the
    stage builds it; the stage records the values it used in ``run_info.json``
    (``effective``)."""

    corpus_dir: Path = Path("corpus")
    outputs_dir: Path = Path("outputs")
    registry: Path = DEFAULT_REGISTRY
    lexicons_dir: Path = DEFAULT_LEXICONS
    metropoles: list[str] = field(default_factory=list)
    workers: int = max(1, min(2, os.cpu_count() or 1))
    seed: int = 42
    progress: bool = True
    log_level: str = "INFO"
    crawl: dict[str, Any] = field(default_factory=dict)
    extract: dict[str, Any] = field(default_factory=dict)
    annotate: dict[str, Any] = field(default_factory=dict)
    topics: dict[str, Any] = field(default_factory=dict)
    indicators: dict[str, Any] = field(default_factory=dict)
    # Where the per-document work runs: nlp.compute.ComputeSettings (scheduler: local,
    # inprocess, tcp://host:port or slurm; workers, partition_size, retries, slurm: {...}).
    compute: dict[str, Any] = field(default_factory=dict)
    config_file: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able view (paths as strings) for ``run_info.json``."""
        d = asdict(self)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


# -- the extract section's values (the keys themselves are checked by the stage's dataclass) --
# Bounds that keep the values meaningful and the system calls they feed valid (setrlimit,
# timers): a week per document, a terabyte per worker, a thousand workers.
EXTRACT_LIMITS = {"timeout_s": 7 * 24 * 3600.0, "max_memory_mb": 1024 * 1024, "workers": 1024,
                  "max_pages": 10_000_000, "ocr_max_pages": 10_000_000}


def extract_value_problem(key: str, value: Any) -> str | None:
    """What is wrong with ``value`` for the extract setting ``key`` (None when it is valid or
    the key is not one checked here). Numbers must be finite and positive (NaN would silently
    disable the time limit, a negative memory cap would fail every document)."""
    import math

    if key == "timeout_s":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be a number of seconds"
        if not math.isfinite(value) or value <= 0:
            return "must be a finite number of seconds > 0"
        if value > EXTRACT_LIMITS[key]:
            return f"must be at most {EXTRACT_LIMITS[key]:g} seconds"
        return None
    if key in ("max_memory_mb", "workers", "max_pages", "ocr_max_pages"):
        if value is None and key in ("max_pages", "ocr_max_pages"):
            return None  # no limit
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                return "must be a whole number"
        if value < 1:
            return "must be at least 1"
        if value > EXTRACT_LIMITS[key]:
            return f"must be at most {EXTRACT_LIMITS[key]:,}"
        return None
    if key in ("ocr",):
        return None if value is None or isinstance(value, bool) else "must be true, false or null"
    if key == "force":
        return None if isinstance(value, bool) else "must be true or false"
    if key in ("engine", "ocr_lang"):
        if not isinstance(value, str) or not value.strip():
            return "must be a non-empty string"
        if key == "ocr_lang" and not re.fullmatch(r"[A-Za-z_]+(?:\+[A-Za-z_]+)*", value):
            return "must be Tesseract language codes such as fra or fra+eng"
    return None


def _validate_extract(section: Mapping[str, Any], origin: str) -> dict[str, Any]:
    for key, value in section.items():
        problem = extract_value_problem(str(key), value)
        if problem:
            raise ConfigError(f"{origin}: setting 'extract.{_cut(key)}': {problem} (got {_short(value)})")
    return dict(section)


_PATH_KEYS = {"corpus_dir", "outputs_dir", "registry", "lexicons_dir", "config_file"}
_SECTION_KEYS = {"crawl", "extract", "annotate", "topics", "indicators", "compute"}


def _coerce(key: str, value: Any, origin: str) -> Any:
    """Convert ``value`` to the type of setting ``key``; ``origin`` names where it came from."""
    try:
        if key in _PATH_KEYS:
            return Path(value).expanduser()
        if key in {"workers", "seed"}:
            out = int(value)
            if key == "workers" and out < 1:
                raise ValueError("must be at least 1")
            return out
        if key == "progress":
            if isinstance(value, str):
                return value.strip().lower() in {"1", "true", "yes", "on"}
            return bool(value)
        if key == "metropoles":
            if isinstance(value, str):
                value = [v for v in value.replace(",", " ").split() if v]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError("must be a list of slugs")
            return value
        if key == "log_level":
            level = str(value).upper()
            if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
                raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
            return level
        if key == "compute" and isinstance(value, str):  # `compute: tcp://host:8786`
            value = {"scheduler": value}
        if key in _SECTION_KEYS:
            if not isinstance(value, Mapping):
                raise ValueError("must be a mapping of that stage's settings")
            if key == "extract":
                return _validate_extract(value, origin)
            return dict(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: setting '{_cut(key)}': {exc} (got {_short(value)})") from None
    return value


def _apply(settings: Settings, values: Mapping[str, Any], origin: str) -> None:
    known = {f.name for f in fields(Settings)}
    for key, value in values.items():
        if "." in key:  # "crawl.contact" from the environment
            section, sub = key.split(".", 1)
            getattr(settings, section)[sub] = value  # the section's dict, still being built
            continue
        if key not in known:
            raise ConfigError(
                f"{origin}: unknown setting '{_cut(key)}' (known: {', '.join(sorted(known - {'config_file'}))})"
            )
        value = _coerce(key, value, origin)
        if key in _SECTION_KEYS:
            merged = copy.deepcopy(getattr(settings, key))
            merged.update(value)
            value = merged
        object.__setattr__(settings, key, value)  # still loading: frozen once returned


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML settings file; a clear :class:`ConfigError` if it is missing or malformed."""
    from nlp.io import load_yaml

    # With limits: invalid UTF-8, alias bombs, deep nesting and huge numbers are one message.
    try:
        data = load_yaml(Path(path), f"config file {path}") or {}
    except BarometreError as exc:
        raise ConfigError(str(exc)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of settings")
    return data


def load_settings(
    cli: Mapping[str, Any] | None = None,
    config_path: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings of a run.

    Input: ``cli`` (flags given on the command line, None values ignored), ``config_path``
    (a YAML file, also taken from ``BAROMETRE_CONFIG``), ``env`` (defaults to ``os.environ``).
    Output: the merged :class:`Settings`.
    """
    env = os.environ if env is None else env
    cli = {k: v for k, v in (cli or {}).items() if v is not None}
    settings = Settings()
    config_path = config_path or (Path(env["BAROMETRE_CONFIG"]) if env.get("BAROMETRE_CONFIG") else None)
    if config_path is not None:
        _apply(settings, read_config_file(config_path), str(config_path))
        object.__setattr__(settings, "config_file", Path(config_path))
    env_values = {ENV_VARS[k]: v for k, v in env.items() if k in ENV_VARS}
    _apply(settings, env_values, "environment")
    _apply(settings, cli, "command line")
    from nlp.compute import compute_settings

    compute_settings(settings.compute)  # a bad scheduler or SLURM setting fails here, named
    return settings


def build_stage_settings(cls: type, section: Mapping[str, Any], name: str, origin: str | Path | None = None,
                         **extra: Any) -> Any:
    """Instantiate a stage's settings dataclass from its config section, with a clear error
    for unknown keys and for values of the wrong type (a boolean for a number, NaN, infinity,
    a negative count, a 5,000-digit integer: see :func:`typed_value_problem`). ``extra``
    values (from common settings) fill keys the section leaves out; ``origin`` (the config
    file) is named in the message."""
    where = f"{origin}: " if origin else ""
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}settings section '{name}': unknown key(s) {', '.join(_cut(k) for k in unknown[:5])} "
            f"(known: {', '.join(sorted(allowed))})"
        )
    hints = typing.get_type_hints(cls)
    for key, value in section.items():
        problem = typed_value_problem(hints.get(key), value)
        if problem:
            raise ConfigError(f"{where}setting '{name}.{key}': {problem} (got {_short(value)})")
    kwargs = {k: v for k, v in extra.items() if k in allowed}
    kwargs.update({k: _whole(hints.get(k), v) for k, v in section.items()})
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}settings section '{name}': {exc}") from None


# Counts, seeds and sizes in the stage settings are never negative and never this large; a
# bigger integer is a typo or a hostile file (and slow to print).
MAX_SETTING_INT = 10**12


def typed_value_problem(hint: Any, value: Any) -> str | None:
    """What is wrong with ``value`` for a setting annotated ``hint`` (None when it is fine or
    the type is not one checked here). Checked: bool must be a boolean; int a whole number in
    [0, 10^12]; float a finite number >= 0; ``dict[str, float]`` such numbers; Optional[...]
    also accepts null. Unions that admit a string are left to the stage."""
    import math

    args = typing.get_args(hint)
    if args and type(None) in args:
        if value is None:
            return None
        rest = [a for a in args if a is not type(None)]
        if str in rest:
            return None
        hint = rest[0] if len(rest) == 1 else hint
    if hint is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if hint is int:
        if isinstance(value, float) and value.is_integer():  # "512.0" in a YAML file
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be a whole number"
        return None if 0 <= value <= MAX_SETTING_INT else f"must be between 0 and {MAX_SETTING_INT:,}"
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be a number"
        if isinstance(value, int) and abs(value) > MAX_SETTING_INT:
            return f"must be at most {MAX_SETTING_INT:,}"
        return None if math.isfinite(value) and value >= 0 else "must be a finite number >= 0"
    if typing.get_origin(hint) is dict and typing.get_args(hint)[1:] == (float,):
        if not isinstance(value, Mapping):
            return "must be a mapping of names to numbers"
        for k, v in value.items():
            problem = typed_value_problem(float, v)
            if problem:
                return f"{_cut(k)}: {problem}"
    return None


def _whole(hint: Any, value: Any) -> Any:
    """An integral float for a whole-number setting, as an int (checked before)."""
    ints = hint is int or (int in typing.get_args(hint) and float not in typing.get_args(hint))
    return int(value) if ints and isinstance(value, float) and value.is_integer() else value


def _cut(name: Any, limit: int = 60) -> str:
    """A key as messages show it: cut, so that a hostile key cannot flood the message."""
    text = str(name)
    return text if len(text) <= limit else text[:limit] + "…"


def _short(value: Any, limit: int = 60) -> str:
    """repr of a value, cut: a hostile value must not make the message hundreds of MB long."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return "an integer of more than 30 digits"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
