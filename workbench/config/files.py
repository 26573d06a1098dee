"""``workbench.yaml`` on disk: find it, load and validate it, and save it back as written.

Saving is a ruamel.yaml round trip: what a person clicked in a panel becomes what CI re-runs,
and every comment, key order and untouched line of the file stays as they wrote it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from workbench.config.project import Config, Gate
from workbench.errors import ConfigError
from workbench.project_code import make_importable


def load_config(path: str | Path) -> Config:
    """Read and validate ``workbench.yaml``; any problem is one :class:`ConfigError`.

    Opening a project makes its own code importable in this process (its folder and its
    ``code:`` entries first on ``sys.path``): notebooks, the CLI and ``workbench run``'s kernels
    all open it this way before a stage loads the model.
    """
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise ConfigError(
            f"config file {str(path)!r} not found; pass --config PATH or create workbench.yaml "
            "(docs/configuration.md lists the keys)"
        )
    try:
        raw = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML ({exc}); fix the syntax and retry") from exc
    config = parse_config(raw, root=file.parent, source=str(file))
    make_importable(config.import_roots)
    return config


def find_config(given: str | Path = "workbench.yaml", *, start: str | Path | None = None) -> Path:
    """The config a stage notebook runs on: ``given`` when it names a file, else the nearest file
    of its name in the working directory (``start``) or a folder above it.

    So a notebook runs under papermill from the project root and from ``notebooks/``, and in
    JupyterLab (whose kernels start in the notebook's folder), with the default parameter. An
    absolute path is taken as it is. Nothing found is one :class:`ConfigError` saying how to give
    the path (papermill's ``-p config PATH``).
    """
    folder = Path(start or Path.cwd()).expanduser().resolve()
    path = Path(given).expanduser()
    if (folder / path).is_file():
        return (folder / path).resolve()
    name = path.name or "workbench.yaml"
    if not path.is_absolute():
        for parent in (folder, *folder.parents):
            if (parent / name).is_file():
                return parent / name
    where = "" if path.is_absolute() else f", nor a {name} in {folder} or a folder above it"
    raise ConfigError(
        f"config file {str(given)!r} not found{where}; give the project's config to the "
        "notebook: `papermill NOTEBOOK OUTPUT -p config PATH`, or set `config` in its "
        "parameters cell"
    )


def parse_config(raw: Any, *, root: Path, source: str = "workbench.yaml") -> Config:
    """Validate an already-parsed mapping as a :class:`Config`."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: expected a mapping of keys (name, model, data, ...), got "
            f"{type(raw).__name__}; docs/configuration.md lists the keys"
        )
    try:
        return Config.model_validate({**raw, "root": root})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        value = first.get("input")
        shown = "" if first["type"] == "missing" else f" (value: {value!r})"
        raise ConfigError(
            f"{source}: field `{field}`: {first['msg']}{shown}; fix that field and retry"
        ) from exc


HEADER = "# workbench.yaml: one model project. Relative paths resolve against this file's folder.\n"


def save_config(config: Config, path: str | Path) -> Path:
    """Write ``config`` to ``path`` (what a person clicked becomes what CI re-runs).

    An existing file keeps what the person wrote: comments, key order, quoting, indentation and
    every untouched section stay byte for byte (a ruamel.yaml round trip); only the values that
    differ from what the file says change, a section the file leaves out gets only the keys that
    differ from their defaults, and a key set to ``None`` (its default) is removed. (A file that
    mixes indentation styles is written in its first style.)
    """
    file = Path(path)
    text = _updated_text(file, config) if file.is_file() else HEADER + config.to_yaml()
    written = parse_config(yaml.safe_load(text), root=config.root, source=str(file))
    if _plain(written) != _plain(config):  # never write a file that means something else
        raise ConfigError(
            f"{file}: the updated file would not load back as the config being saved; "
            "edit it by hand (nothing was written)"
        )
    tmp = file.with_suffix(file.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(file)
    return file


def save_gates(gates: Mapping[str, Gate], path: str | Path) -> Path:
    """Write ``gates`` into the config file at ``path``, everything else as the file says now
    (the validate panel's **Save gates**; see :func:`save_config` for what stays as written)."""
    return save_config(load_config(path).with_gates(gates), path)


def _plain(config: Config) -> dict[str, Any]:
    return config.model_dump(mode="json", exclude={"root"})


#: Indentation styles tried (mapping, sequence, dash offset): the first that writes the file
#: back unchanged is the file's own, so untouched lines keep their bytes.
INDENT_STYLES = ((2, 2, 0), (2, 4, 2), (4, 4, 0), (4, 6, 2), (4, 4, 2), (3, 3, 0), (3, 5, 2))


def _round_trip(indent: tuple[int, int, int], *, explicit_start: bool) -> YAML:
    rt = YAML()  # round trip: comments, key order, flow style and blank lines kept
    rt.preserve_quotes = True
    rt.width = 4096  # never re-wrap a long line the person wrote
    rt.indent(mapping=indent[0], sequence=indent[1], offset=indent[2])
    rt.explicit_start = explicit_start
    return rt


def _dumped(rt: YAML, doc: Any) -> str:
    out = io.StringIO()
    rt.dump(doc, out)
    return out.getvalue()


def _updated_text(file: Path, config: Config) -> str:
    """The file's text with only the values changed that differ from ``config``."""
    before = load_config(file)
    text = file.read_text()
    start = text.lstrip().startswith("---")
    rt = _round_trip(INDENT_STYLES[0], explicit_start=start)
    for style in INDENT_STYLES:
        candidate = _round_trip(style, explicit_start=start)
        if _dumped(candidate, candidate.load(text)) == text:
            rt = candidate
            break
    doc = rt.load(text)
    _apply(doc, _plain(before), _plain(config))
    return _dumped(rt, doc)


_MISSING: Any = object()


def _apply(doc: Any, before: dict[str, Any], after: dict[str, Any]) -> None:
    """Change ``doc`` (a round-trip mapping) where ``after`` differs from ``before``, by leaf."""
    for key in [*after, *(k for k in before if k not in after)]:
        old, new = before.get(key, _MISSING), after.get(key, _MISSING)
        if old == new:
            continue
        if isinstance(new, dict):
            if not isinstance(doc.get(key), dict):
                doc[key] = CommentedMap()
            _apply(doc[key], old if isinstance(old, dict) else {}, new)
        elif new is None or new is _MISSING:
            doc.pop(key, None)
        else:
            doc[key] = new
