"""The shape of the house (docs/ARCHITECTURE.md): no import circles, one-way layers, families reached
through the registry only. Read from the source with `ast`, so these hold for every import, at
module level or inside a function (`if TYPE_CHECKING:` blocks excepted)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("codec", "cli")
INSTALLED_AS = {"codec": "codec", "cli": "codec.cli"}  # pyproject.toml's package-dir: cli/ installs as codec.cli
FAMILY_MODULES = {"codec.pipeline.hyperprior", "codec.pipeline.m2t", "codec.pipeline.vct"}
FAMILY_CLASSES = {"HyperpriorModel", "M2TModel", "VCTModel", "MeanScaleHyperprior", "M2T", "VCT"}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO / package).with_suffix("").parts
            parts = (INSTALLED_AS[package], *(parts[:-1] if parts[-1] == "__init__" else parts))
            found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of this repository that `name` imports (anywhere in the file)."""
    tree = ast.parse(path.read_text(), str(path))
    skip = set()
    for node in ast.walk(tree):  # `if TYPE_CHECKING:` bodies are not run
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in modules else base)
    return {m for m in out if m in modules and m != name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_module_takes_part_in_an_import_circle(graph):
    assert _cycles(graph) == []


def test_the_circle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_graph_sees_imports_inside_functions(graph):
    assert "codec.weights" in graph["codec.pipeline.image"]  # imported lazily, in load_model


def test_pyproject_installs_every_package_of_the_tree_and_no_top_level_cli():
    import tomllib

    setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    tree = {INSTALLED_AS[p] + "".join("." + part for part in d.relative_to(REPO / p).parts)
            for p in PACKAGES for d in [REPO / p, *(REPO / p).rglob("*")] if (d / "__init__.py").is_file()}
    assert set(setup["packages"]) == tree | {"codec.shipped"}
    assert setup["package-dir"] == {"codec.cli": "cli", "codec.shipped": "weights"}
    shipped = setup["package-data"]["codec.shipped"]
    assert "manifest.json" in shipped and all((REPO / "weights" / f).is_file() or "*" in f for f in shipped)


def test_codec_never_imports_the_cli_and_the_container_never_imports_torch():
    for path in (REPO / "codec").rglob("*.py"):
        text = path.read_text()
        if path.name != "__main__.py":  # the entry point of `python -m codec`
            # whole names: `from codec.train.clips import clip_latents` names no cli
            assert not re.search(r"\bimport cli\b|\bfrom cli\b|\bcodec\.cli\b", text), path
        for lib in ("typer", "rich"):
            assert f"import {lib}" not in text and f"from {lib}" not in text, path
    for path in (REPO / "codec" / "container").rglob("*.py"):
        assert "torch" not in path.read_text().replace("torch-free", ""), path


def test_the_coder_is_the_only_importer_of_constriction():
    users = [p.relative_to(REPO).as_posix() for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")
             if "import constriction" in p.read_text()]
    assert users == ["codec/coder.py"]


def test_only_family_modules_name_family_classes(graph):
    """Outside a family's own modules (and the model modules that define the networks), code reaches
    families through codec.registry: no isinstance on their classes, no imports of their model types."""
    offenders = []
    for name, path in _modules().items():
        if name in FAMILY_MODULES or name.startswith(("codec.models.", "codec.train.")):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance":
                names = {n.id if isinstance(n, ast.Name) else getattr(n, "attr", "") for n in ast.walk(node.args[1])}
                if names & FAMILY_CLASSES:
                    offenders.append(f"{name}:{node.lineno}")
    assert offenders == []


def test_every_registered_family_names_itself_and_implements_its_kind():
    from codec import registry
    from codec.family import Family

    builtin = set(registry.BUILTIN.values())
    for name in registry.names():
        family = registry.get(name)
        assert family.name == name and family.kind in ("image", "video")
        own = {k for k, v in vars(type(family)).items() if callable(v) or isinstance(v, staticmethod)}
        weights = {"builtin"} if name in builtin else {"load", "serialize", "config"}  # built-in: no weights file
        needed = weights | ({"analyse", "encode", "decode"} if family.kind == "image" else {"frame_coder"})
        assert needed <= own | {k for c in type(family).__mro__[1:-1] if c is not Family for k in vars(c)}, name
