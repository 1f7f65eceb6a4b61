"""docs/architecture.md's map of the package against the package itself: every module named,
nothing named that is not there, every folder of modules a package setuptools installs."""

from __future__ import annotations

import re
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parent.parent
ENTRY = re.compile(r"^( *)((?:\w+\.py|\w+/)(?:, \w+\.py)*)(?:\s|$)")


def mapped() -> set[str]:
    """The paths the map's tree names, relative to the package (folders end with /)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    tree = text[text.index("```\nraysearch/") + 4 :]
    tree = tree[: tree.index("```")]
    names, folders = set(), {}  # folders: indent -> the folder opened there
    for line in tree.splitlines()[1:]:  # below "raysearch/"
        match = ENTRY.match(line)
        if not match:
            continue  # a description's continuation
        indent = len(match[1])
        folders = {i: f for i, f in folders.items() if i < indent}
        parent = "".join(folders[i] for i in sorted(folders))
        for name in match[2].split(", "):
            names.add(parent + name)
            if name.endswith("/"):
                folders[indent] = name
    return names


def modules() -> set[str]:
    """Every module of the package but the __init__ files, and every folder holding one."""
    package = ROOT / "raysearch"
    found = set()
    for path in package.rglob("*.py"):
        relative = path.relative_to(package)
        if "__pycache__" in relative.parts:
            continue
        for depth in range(1, len(relative.parts)):
            found.add("/".join(relative.parts[:depth]) + "/")
        if path.name != "__init__.py":
            found.add(relative.as_posix())
    return found


def test_the_map_names_every_module_and_only_those():
    named = {n for n in mapped() if n != "search_spaces/"}
    assert (ROOT / "raysearch" / "search_spaces").is_dir()
    assert sorted(modules() - named) == [], "modules missing from docs/architecture.md"
    assert sorted(named - modules()) == [], "docs/architecture.md names what is not there"


def test_every_folder_of_modules_is_a_package_setuptools_installs():
    folders = {f"raysearch.{f.rstrip('/').replace('/', '.')}" for f in modules() if f.endswith("/")}
    installed = set(find_packages(str(ROOT), include=["raysearch*"]))
    assert sorted(folders - installed) == []
