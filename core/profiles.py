"""Profiles: the settings for another body of data, applied onto `params.yaml` as one named change.

The committed `params.yaml` is the offline demo profile. A profile (`profiles/<name>.yaml`) lists key paths
and the values that replace them, exactly what `dvc exp run -S key=value` would set, so that one command
switches the whole pipeline to real data: `twingan profile real` rewrites `params.yaml` (comments and key
order kept, the result validated before anything is written), and `dvc exp run` then runs it as a DVC
experiment, recorded beside the demo's results and named by the `profile` key the profile sets. The
model file keeps that name too (training/model_file.py), so every model says which profile made it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from core.atomic import write_bytes_atomic
from core.params import DOMAIN_NAME, LoadedParams, ParamsError, parse_params

PROFILES_DIR = "profiles"


def _yaml() -> Any:
    from ruamel.yaml import YAML  # DVC's own YAML library: a round trip keeps comments and order

    handler = YAML()
    handler.preserve_quotes = True
    handler.width = 4096
    handler.indent(mapping=2, sequence=4, offset=2)
    handler.representer.add_representer(
        type(None), lambda representer, _: representer.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return handler


def profiles_dir(root: Path) -> Path:
    return root / PROFILES_DIR


def available(root: Path) -> list[str]:
    """The profiles shipped beside `params.yaml` (the demo is params.yaml itself)."""
    return sorted(path.stem for path in profiles_dir(root).glob("*.yaml"))


def read_profile(path: Path) -> dict[str, Any]:
    """Key path -> value, in the file's order (ruamel nodes: their comments travel into params.yaml)."""
    if not path.is_file():
        known = ", ".join(available(path.parent.parent)) or "none"
        raise ParamsError(f"{path}: no such profile (known: {known})")
    try:
        data = _yaml().load(path.read_text(encoding="utf-8"))
    except Exception as error:  # ruamel raises its own YAMLError subclasses
        raise ParamsError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, Mapping) or not data:
        raise ParamsError(f"{path}: expected a mapping of key paths (e.g. train.steps: 1000) to values")
    for key in data:
        if not isinstance(key, str) or not all(key.split(".")):
            raise ParamsError(f"{path}: {key!r} is not a key path (names joined by dots, e.g. domains.human.source)")
    if "profile" in data:
        raise ParamsError(f"{path}: profile: set from the file's name ({path.stem}); remove the key")
    return dict(data)


def parse_assignment(text: str) -> tuple[str, Any]:
    """`key.path=value` (value as YAML), as `dvc exp run -S` takes it."""
    key, sep, value = text.partition("=")
    if not sep or not key or not all(key.split(".")):
        raise ParamsError(f"--set {text!r}: expected key.path=value, e.g. train.steps=2000")
    try:
        return key, yaml.safe_load(value)
    except yaml.YAMLError as error:
        raise ParamsError(f"--set {text!r}: the value is not valid YAML: {error}") from None


def _assign(document: Any, key: str, value: Any, where: str) -> None:
    node = document
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            from ruamel.yaml.comments import CommentedMap

            child = node[part] = CommentedMap()
        elif not isinstance(child, Mapping):
            raise ParamsError(f"{where}: {key}: {'.'.join(parts[: depth + 1])} is a value, not a section")
        node = child
    comments = getattr(node, "ca", None)
    old = node.get(parts[-1])
    # A section's end-of-line comment describes what it held (a detector, a framing): not the new value.
    if isinstance(old, Mapping) and comments is not None and parts[-1] in comments.items:
        token = comments.items[parts[-1]]
        for i, part in enumerate(token):
            if part is not None and i == 2 and hasattr(part, "value") and part.value.startswith("#"):
                lines = part.value.split("\n", 1)  # keep comment lines below it: they belong to what follows
                part.value = "\n" + lines[1] if len(lines) > 1 else "\n"
    node[parts[-1]] = value


def _sources_set(changes: Sequence[tuple[str, Any]], domains: Mapping[str, Any]) -> list[str]:
    """The domains whose source a change sets: their folders must exist now (others may be a stage's output)."""
    touched: list[str] = []
    for key, _ in changes:
        parts = key.split(".")
        if parts[0] != "domains":
            continue
        names = list(domains) if len(parts) == 1 else [parts[1]] if len(parts) == 2 or parts[2] == "source" else []
        touched += [name for name in names if name in domains and name not in touched]
    return touched


def apply_profile(params_file: Path, name: str, sets: Sequence[str] = ()) -> list[str]:
    """Rewrite `params_file` with profile `name` and then the `sets` (key.path=value) applied; returns the
    key paths set. Nothing is written unless the result validates and the source folders it names exist."""
    if not DOMAIN_NAME.match(name):
        raise ParamsError(f"profile {name!r}: a profile name is lowercase letters, digits and '_'")
    params_file = params_file.absolute()
    root = params_file.parent
    path = profiles_dir(root) / f"{name}.yaml"
    changes = list(read_profile(path).items()) + [parse_assignment(text) for text in sets]
    handler = _yaml()
    try:
        document = handler.load(params_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{params_file}: no such params file (run from the project root, or pass --params)") from None
    for key, value in changes:
        _assign(document, key, value, str(path))
    document["profile"] = name
    buffer = io.StringIO()
    handler.dump(document, buffer)
    text = buffer.getvalue()
    try:
        params = parse_params(yaml.safe_load(text), params_file)
    except ParamsError as error:
        raise ParamsError(f"{path} applied to {params_file.name}:\n{error}") from None
    loaded = LoadedParams(params, root=root, file=params_file)
    for domain in _sources_set(changes, params.domains):
        try:
            loaded.source_path(domain)
        except ParamsError as error:
            raise ParamsError(f"{path}: {error} (set another with --set domains.{domain}.source.path=...)") from None
    write_bytes_atomic(params_file, text.encode("utf-8"))
    return [key for key, _ in changes]


__all__ = ["PROFILES_DIR", "apply_profile", "available", "parse_assignment", "read_profile"]
