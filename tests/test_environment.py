"""environment.yml (conda-forge) must list exactly the packages of pyproject.toml."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
# PyPI name (PEP 503 normalised) -> conda-forge name, where they differ. conda, unlike pip,
# does not treat "-" and "_" as the same, so its spelling is kept and compared exactly.
CONDA_NAMES = {"torch": "pytorch", "jupyterlab-rise": "jupyterlab_rise"}
REQ = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*$")


def _normalise(requirement: str, conda: bool = False) -> tuple[str, str]:
    """Return (conda-forge name, version spec) of a PyPI requirement or, with ``conda``, of a
    conda-forge one, whose name is only lower-cased."""
    name, spec = REQ.match(requirement).groups()
    name = name.lower()
    if not conda:
        name = re.sub(r"[-_.]+", "-", name)
        name = CONDA_NAMES.get(name, name)
    return name, spec.replace(" ", "")


def _pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # Only the main list and `dev`: the other extras (bench, browser) are pip-only tools.
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return dict(_normalise(r) for r in reqs)


def _environment() -> tuple[list[str], dict[str, str], list[str]]:
    """Return (channels, conda packages, pip lines) from the simple YAML of environment.yml."""
    channels, conda, pip = [], {}, []
    section = None
    for raw in (ROOT / "environment.yml").read_text().splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not raw.startswith(" "):
            section = line.rstrip(":").strip()
            continue
        item = line.strip().removeprefix("- ").strip()
        if section == "channels":
            channels.append(item)
        elif section == "dependencies":
            if raw.startswith("      "):  # inside the pip: block
                pip.append(item)
            elif item not in ("pip", "pip:") and not item.startswith("python="):
                name, spec = _normalise(item, conda=True)
                conda[name] = spec
    return channels, conda, pip


def test_environment_uses_conda_forge_only():
    channels, _, _ = _environment()
    assert channels == ["conda-forge"]


def test_environment_matches_pyproject():
    _, conda, _ = _environment()
    ours = _pyproject()
    assert conda == ours, (
        f"only in pyproject.toml: {sorted(set(ours) - set(conda))}; "
        f"only in environment.yml: {sorted(set(conda) - set(ours))}; "
        f"different versions: {sorted(k for k in set(ours) & set(conda) if ours[k] != conda[k])}")


def test_environment_installs_labs_lib_editable():
    _, _, pip = _environment()
    assert pip == ["-e ."]


def test_torch_is_pinned_and_torchvision_absent():
    ours = _pyproject()
    assert ours["pytorch"] == "==2.13.0"
    assert "torchvision" not in ours
