"""Reading a recipe: a TOML file, then ``key.path=value`` overrides, validated as one :class:`Recipe`.

    recipe = load_recipe("recipes/demo-small.toml", ["seed=1", "students.max_steps=200"])

A bad key or value is refused before any work, naming the file and line (or the override) and what
is allowed (:class:`RecipeError`, a :class:`~kard_chain.errors.KardDataError`).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from kard_chain.errors import KardDataError
from kard_chain.recipe.config import Recipe

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class RecipeError(KardDataError):
    """A recipe that cannot run as written: unknown key, wrong type, missing path."""


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=value`` -> (["a", "b"], value): the value read as TOML (``3``, ``true``, ``["kard"]``), else as a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
        raise RecipeError(f"override {text!r}: expected key.path=value, e.g. students.max_steps=200")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.split("."), value


def apply_override(data: dict[str, Any], path: list[str], value: Any) -> None:
    """Set ``data[path[0]][path[1]]... = value``, creating tables on the way."""
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise RecipeError(f"override {'.'.join(path)}: {part!r} is a value, not a section")
        node = child
    node[path[-1]] = value


def key_lines(text: str) -> dict[str, int]:
    """Dotted key -> line number of its assignment in a TOML text (tables and dotted keys; inline tables by their key)."""
    lines, table = {}, ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        header = re.fullmatch(r"\[\s*([A-Za-z0-9_.\- ]+?)\s*\]\s*(#.*)?", stripped)
        if header:
            table = header.group(1).replace(" ", "")
            lines.setdefault(table, number)
            continue
        assignment = re.match(r"([A-Za-z0-9_.\-\" ]+?)\s*=", stripped)
        if assignment and not stripped.startswith("#"):
            key = assignment.group(1).replace(" ", "").replace('"', "")
            lines[f"{table}.{key}" if table else key] = number
    return lines


def _allowed(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names allowed where ``loc`` points (for an unknown key's message)."""
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if isinstance(part, str) else None
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields)


def _where(key: str, source: Path | None, lines: dict[str, int], overridden: dict[str, str]) -> str:
    for candidate in [key] + [key.rsplit(".", i)[0] for i in range(1, key.count(".") + 1)]:
        if candidate in overridden:
            return f"override {overridden[candidate]!r}"
        if source is not None and candidate in lines:
            return f"{source}:{lines[candidate]}"
    return str(source) if source is not None else "recipe"


def validate_recipe(data: dict[str, Any], source: Path | None = None, text: str = "",
                    overridden: dict[str, str] | None = None) -> Recipe:
    """A :class:`Recipe` from parsed data; each error names the file and line (or override), the key and what is allowed."""
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        lines, problems = key_lines(text), []
        for err in e.errors():
            loc = tuple(p for p in err["loc"] if not isinstance(p, int))
            key = ".".join(str(p) for p in loc) or "(recipe)"
            message = err["msg"]
            if err["type"] == "extra_forbidden":
                allowed = _allowed(Recipe, loc)
                message = "unknown key" + (f"; allowed here: {', '.join(allowed)}" if allowed else "")
            elif err["type"] == "missing":
                message = "required, missing"
            elif "literal" in err["type"] or err["type"] == "enum":
                message = f"{message} (got {err.get('input')!r})"
            problems.append(f"{_where(key, source, lines, overridden or {})}: key '{key}': {message}")
        raise RecipeError("invalid recipe:\n  " + "\n  ".join(problems)) from None


def load_recipe(path: str | Path | None, overrides: list[str] = (), base: dict[str, Any] | None = None) -> Recipe:
    """The recipe in ``path`` (TOML; or ``base`` data) with ``overrides`` (``key.path=value``) applied."""
    text, data, source = "", dict(base or {}), None
    if path is not None:
        source = Path(path)
        if not source.is_file():
            raise RecipeError("recipe file not found", path=source)
        text = source.read_text()
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise RecipeError(f"not valid TOML: {e}", path=source) from None
    overridden = {}
    for override in overrides:
        keys, value = parse_override(override)
        apply_override(data, keys, value)
        overridden[".".join(keys)] = override
    return validate_recipe(data, source, text, overridden)


def recipes_root() -> Path:
    """The packaged recipes folder, or the repository's in an editable install."""
    packaged = Path(__file__).resolve().parents[1] / "recipes"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "recipes"


def packaged_recipe(name: str) -> Path:
    """A recipe that ships with kard-chain (``demo-small``, ``strategyqa``...), by name."""
    file = recipes_root() / f"{name}.toml"
    if not file.is_file():
        known = sorted(p.stem for p in recipes_root().glob("*.toml"))
        raise RecipeError(f"no packaged recipe {name!r}; known: {', '.join(known)}")
    return file
