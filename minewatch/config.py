"""Validated configuration: pydantic models loaded from YAML.

An unknown or mistyped key is refused with its name and the nearest valid one, so a typo never
silently falls back to a default.
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from minewatch.errors import UserError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every configuration object: unknown keys are errors, fields are documented."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


def _field_names(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Valid keys at the nesting level of an error location (for the 'did you mean' hint)."""
    current: Any = model
    for part in loc[:-1]:
        field = getattr(current, "model_fields", {}).get(part) if isinstance(part, str) else None
        if field is None:
            if isinstance(part, int):
                continue
            return []
        ann = field.annotation
        args = getattr(ann, "__args__", ()) or ()
        candidates = [ann, *args]
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def explain_validation_error(err: ValidationError, model: type[BaseModel]) -> str:
    """Turn the first pydantic error into one readable sentence."""
    first = err.errors()[0]
    loc = tuple(first.get("loc", ()))
    dotted = ".".join(str(p) for p in loc) or "(top level)"
    if first.get("type") == "extra_forbidden":
        valid = _field_names(model, loc)
        near = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        hint = f"; did you mean '{near[0]}'?" if near else f"; valid keys: {', '.join(valid)}"
        return f"unknown key '{dotted}'{hint}"
    return f"key '{dotted}': {first.get('msg', 'invalid value')}"


def validate(data: dict[str, Any], model: type[M], *, source: str | Path = "<config>") -> M:
    """Build ``model`` from a mapping, raising :class:`UserError` that names the key at fault."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise UserError(
            explain_validation_error(err, model), path=source, fix="correct the key or value in the YAML"
        ) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with user-facing errors for missing or malformed files."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError("no such file", path=p, fix="check the path to the YAML config") from None
    except OSError as exc:
        raise UserError(f"cannot read the file ({exc.strerror})", path=p, fix="check permissions") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"not valid YAML{where}", path=p, fix="fix the YAML syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError("the YAML must hold a mapping of keys to values", path=p, fix="use key: value lines")
    return data


def load_config(path: str | Path, model: type[M]) -> M:
    """Load and validate a YAML config file."""
    return validate(read_yaml(path), model, source=path)


def builtin_config_path(relative: str) -> Path:
    """Path of a YAML file shipped in ``configs/`` (e.g. ``"synth/default.yaml"``)."""
    path = Path(str(resources.files("minewatch.configs").joinpath(relative)))
    if not path.is_file():
        raise UserError(f"no built-in config '{relative}'", fix="list configs/ for the available names")
    return path


def resolve_config(name_or_path: str | Path, folder: str) -> Path:
    """Accept either a YAML path or the name of a built-in config in ``configs/<folder>/``."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    return builtin_config_path(f"{folder}/{name_or_path}.yaml")
