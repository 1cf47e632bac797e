"""The three descriptions of the environment must agree."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_names() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return {_name(r) for r in project["dependencies"] + extras["tutorial"] + extras["dev"]}


def test_environment_yml_lists_the_same_packages_as_pyproject():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    conda_names = {_name(r) for r in pip_section if not r.startswith("-e")}
    assert conda_names == _pyproject_names()
    assert "python=3.11" in environment["dependencies"]


def test_lock_file_pins_every_dependency_exactly():
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements.lock line is not an exact pin: {line!r}"
            pins[_name(name)] = version
    missing = _pyproject_names() - set(pins)
    assert not missing, f"requirements.lock lacks {sorted(missing)}; run `make lock`"
    major, minor = (int(part) for part in pins["torch"].split(".")[:2])
    assert (major, minor) >= (2, 14), "torch must be >= 2.14 (torchvision needs the registry build)"
