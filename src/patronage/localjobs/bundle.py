"""Loading a bundle: databricks.yml with its includes, variables per target, ``${...}``.

Merges like the bundle CLI (maps by key, task-like lists by their key field),
resolves ``${var.*}`` and ``${bundle.*}`` for one target and leaves every
other namespace as it is.
"""

from __future__ import annotations

import copy
import dataclasses
import glob
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from patronage.localjobs.errors import JobsError

BUNDLE_FILE = "databricks.yml"
DEFAULT_TARGET = "local"
#: The variable a bundle may declare for the runner's state directory (set from --state-dir).
STATE_DIR_VAR = "state_dir"


def find_bundle_dir(start: str | os.PathLike[str] | None = None) -> Path:
    """The nearest directory at or above ``start`` (default cwd) holding databricks.yml."""
    here = Path(start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / BUNDLE_FILE).is_file():
            return candidate
    raise JobsError(f"no {BUNDLE_FILE} in {here} or any parent directory; use --bundle-dir")


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise JobsError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise JobsError(f"{path}: expected a mapping at the top level")
    return data


_KEYED_LISTS = {"tasks": "task_key", "job_clusters": "job_cluster_key", "parameters": "name"}


def _merge(base: Any, override: Any, key: str | None = None) -> Any:
    """Deep-merge like the bundle CLI: maps by key, task-like lists by their key field."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = _merge(out[k], v, k) if k in out else copy.deepcopy(v)
        return out
    id_field = _KEYED_LISTS.get(key or "")
    if id_field and isinstance(base, list) and isinstance(override, list):
        out_list = [copy.deepcopy(x) for x in base]
        index = {x.get(id_field): i for i, x in enumerate(out_list) if isinstance(x, dict)}
        for item in override:
            ident = item.get(id_field) if isinstance(item, dict) else None
            if ident is not None and ident in index:
                out_list[index[ident]] = _merge(out_list[index[ident]], item)
            else:
                out_list.append(copy.deepcopy(item))
        return out_list
    return copy.deepcopy(override)


def load_bundle_config(bundle_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """databricks.yml with every ``include`` file merged in (unresolved)."""
    root = Path(bundle_dir)
    main = root / BUNDLE_FILE
    if not main.is_file():
        raise JobsError(f"{main} not found")
    config = _load_yaml(main)
    includes = config.get("include") or []
    if isinstance(includes, str):
        includes = [includes]
    seen: set[Path] = set()
    for pattern in includes:
        matches = sorted(Path(p) for p in glob.glob(str(root / pattern), recursive=True))
        for path in matches:
            if path in seen or not path.is_file():
                continue
            seen.add(path)
            part = _load_yaml(path)
            for key, value in part.items():
                if key == "resources":
                    for kind, items in (value or {}).items():
                        existing = config.setdefault("resources", {}).setdefault(kind, {})
                        for name, item in (items or {}).items():
                            if name in existing:
                                raise JobsError(
                                    f"{path}: resource {kind}.{name} is defined more than once"
                                )
                            existing[name] = item
                else:
                    config[key] = _merge(config[key], value, key) if key in config else value
    return config


def default_target(config: Mapping[str, Any]) -> str | None:
    for name, target in (config.get("targets") or {}).items():
        if isinstance(target, dict) and target.get("default") is True:
            return str(name)
    return None


def _variable_default(spec: Any) -> tuple[bool, Any]:
    if isinstance(spec, dict):
        if "default" in spec:
            return True, spec["default"]
        return False, None
    return True, spec  # shorthand `name: value`


def _target_value(raw: Any) -> tuple[bool, Any]:
    # Target overrides are plain values, or {default: ...} in the long form.
    if isinstance(raw, dict) and set(raw) <= {"default", "description", "type"}:
        return ("default" in raw), raw.get("default")
    return True, raw


def target_variables(
    config: Mapping[str, Any],
    target: str,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Variable values for ``target``: defaults, then the target's, then ``overrides``.

    Values are returned unresolved (they may contain ``${var.*}``). A variable
    with no value for the target is absent from the result.
    """
    declared = config.get("variables") or {}
    targets = config.get("targets") or {}
    if target not in targets:
        raise JobsError(
            f"target '{target}' is not defined in {BUNDLE_FILE}; "
            f"targets: {', '.join(targets) or '(none)'}"
        )
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        has, value = _variable_default(spec)
        if has:
            values[name] = value
    for name, raw in ((targets[target] or {}).get("variables") or {}).items():
        if name not in declared:
            raise JobsError(f"target '{target}' sets variable '{name}' that is not declared")
        has, value = _target_value(raw)
        if has:
            values[name] = value
    for name, value in (overrides or {}).items():
        if name not in declared:
            raise JobsError(
                f"--var {name}: no such variable; declared: {', '.join(sorted(declared))}"
            )
        spec = declared[name]
        if isinstance(spec, dict) and spec.get("type") == "complex" and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise JobsError(f"--var {name}: complex variable needs a JSON value") from None
        values[name] = value
    return values


# ${a.b} but not $${a.b} (escaped literal), same shape as the bundle CLI's references.
_REF = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z_][A-Za-z0-9_\-]*)*)\}")


class _Resolver:
    """Resolves ``${var.*}`` / ``${bundle.*}``; leaves other namespaces as they are."""

    def __init__(self, raw_vars: Mapping[str, Any], bundle_name: str, target: str) -> None:
        self.raw = dict(raw_vars)
        self.done: dict[str, Any] = {}
        self.bundle = {"name": bundle_name, "target": target}

    def var(self, name: str, stack: tuple[str, ...] = ()) -> Any:
        if name in self.done:
            return self.done[name]
        if name in stack:
            raise JobsError("variables refer to each other in a cycle: " + " -> ".join(stack))
        if name not in self.raw:
            raise JobsError(f"variable '{name}' is used but has no value for this target")
        value = self._resolve(self.raw[name], (*stack, name))
        self.done[name] = value
        return value

    def _lookup(self, path: str, stack: tuple[str, ...]) -> tuple[bool, Any]:
        head, _, rest = path.partition(".")
        if head == "var" and rest:
            name, _, sub = rest.partition(".")
            value = self.var(name, stack)
            for part in [p for p in sub.split(".") if p]:
                if not isinstance(value, dict) or part not in value:
                    raise JobsError(f"${{{path}}}: no field '{part}'")
                value = value[part]
            return True, value
        if head == "bundle" and rest in self.bundle:
            return True, self.bundle[rest]
        return False, None

    def _resolve(self, obj: Any, stack: tuple[str, ...] = ()) -> Any:
        if isinstance(obj, dict):
            return {k: self._resolve(v, stack) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._resolve(v, stack) for v in obj]
        if not isinstance(obj, str):
            return obj
        whole = _REF.fullmatch(obj)
        if whole:  # a lone reference keeps the value's type (lists, numbers)
            found, value = self._lookup(whole.group(1), stack)
            return value if found else obj

        def sub(m: re.Match[str]) -> str:
            found, value = self._lookup(m.group(1), stack)
            if not found:
                return m.group(0)
            if isinstance(value, bool):
                return str(value).lower()
            return value if isinstance(value, str) else json.dumps(value)

        return _REF.sub(sub, obj).replace("$${", "${")

    def resolve(self, obj: Any) -> Any:
        return self._resolve(obj)


def find_var_references(obj: Any) -> set[str]:
    """Names of every ``${var.NAME...}`` used in ``obj``."""
    out: set[str] = set()
    if isinstance(obj, dict):
        for v in obj.values():
            out |= find_var_references(v)
    elif isinstance(obj, list):
        for v in obj:
            out |= find_var_references(v)
    elif isinstance(obj, str):
        for m in _REF.finditer(obj):
            head, _, rest = m.group(1).partition(".")
            if head == "var" and rest:
                out.add(rest.split(".")[0])
    return out


@dataclasses.dataclass
class Bundle:
    """A loaded bundle for one target, with its variables resolved."""

    root: Path
    name: str
    target: str
    config: dict[str, Any]
    variables: dict[str, Any]

    def job_keys(self) -> list[str]:
        return list(self._resources().get("jobs") or {})

    def _resources(self) -> dict[str, Any]:
        resources = self.config.get("resources") or {}
        target_res = ((self.config.get("targets") or {}).get(self.target) or {}).get("resources")
        if target_res:
            resources = _merge(resources, target_res, "resources")
        return resources

    def job(self, key: str) -> dict[str, Any]:
        """The job definition with ``${var.*}`` and ``${bundle.*}`` resolved."""
        jobs = self._resources().get("jobs") or {}
        if key not in jobs:
            raise JobsError(
                f"job '{key}' is not defined under resources/; jobs: {', '.join(jobs) or '(none)'}"
            )
        job: dict[str, Any] = self.resolve(jobs[key])
        return job

    def resolve(self, obj: Any) -> Any:
        """A copy of ``obj`` with ``${var.*}`` and ``${bundle.*}`` resolved for this target."""
        return _Resolver(self.variables, self.name, self.target).resolve(copy.deepcopy(obj))

    def target_setting(self, key: str) -> Any:
        """A top-level setting (``run_as``, ``permissions``...) as the target overrides it."""
        target = (self.config.get("targets") or {}).get(self.target) or {}
        return self.resolve(target[key] if key in target else self.config.get(key))


def load_bundle(
    bundle_dir: str | os.PathLike[str] | None = None,
    target: str = DEFAULT_TARGET,
    variables: Mapping[str, Any] | None = None,
    state_dir: str | os.PathLike[str] | None = None,
) -> Bundle:
    """Load the bundle for ``target``; ``state_dir`` sets var ``state_dir`` (absolute)."""
    root = Path(bundle_dir).resolve() if bundle_dir else find_bundle_dir()
    config = load_bundle_config(root)
    name = str((config.get("bundle") or {}).get("name") or root.name)
    overrides = dict(variables or {})
    if state_dir is not None:
        if STATE_DIR_VAR in overrides:
            raise JobsError("set the state directory with --state-dir, not --var state_dir")
        if STATE_DIR_VAR in (config.get("variables") or {}):
            overrides[STATE_DIR_VAR] = str(Path(state_dir).resolve())
    raw = target_variables(config, target, overrides)
    resolver = _Resolver(raw, name, target)
    resolved = {n: resolver.var(n) for n in raw}
    return Bundle(root=root, name=name, target=target, config=config, variables=resolved)
