"""The package's layout: no module is shadowed by a function of the same name, no import circles."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import types
from pathlib import Path

import nnforensics


def _submodules() -> list[str]:
    return [info.name for info in pkgutil.walk_packages(nnforensics.__path__, "nnforensics.")
            if not info.name.endswith("__main__")]  # importing __main__ runs the CLI


def test_every_submodule_is_reachable_as_a_module_by_its_dotted_name():
    shadowed = []
    for name in _submodules():
        module = importlib.import_module(name)
        parent_name, _, leaf = name.rpartition(".")
        attribute = getattr(importlib.import_module(parent_name), leaf, None)
        if attribute is not module:  # e.g. `import nnforensics.resync` giving the function
            shadowed.append(f"{name} -> {type(attribute).__name__}")
    assert not shadowed, shadowed


def test_core_functions_and_their_modules_have_distinct_names():
    import nnforensics.permutation
    import nnforensics.perturbation
    import nnforensics.resynchronization

    for module in (nnforensics.permutation, nnforensics.perturbation, nnforensics.resynchronization):
        assert isinstance(module, types.ModuleType)
    assert nnforensics.permute is nnforensics.permutation.permute
    assert nnforensics.resync is nnforensics.resynchronization.resync
    assert nnforensics.perturb is nnforensics.perturbation.perturb


#: The layers, lowest first: a module may import its own layer and those below, never one above
#: (imports inside functions included: they still make an import circle).
LAYERS = ("errors", "utils", "io", "data", "models", "graph", "training", "recipes", "permutation",
          "resynchronization", "perturbation", "integrity", "attacks", "watermark", "fragility", "experiments", "report",
          "demo", "cli", "__main__", "__init__")
#: One subpackage per analysis, side by side above the shared layers: none imports another.
ANALYSES = ("watermark", "fragility")


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, imported module) of every nnforensics import in a file, relative ones resolved."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
            out += [(node.lineno, target if node.module else f"{target}.{a.name}") for a in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nnforensics"):
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("nnforensics")]
    return out


def test_no_module_imports_a_layer_above_its_own():
    root = Path(nnforensics.__file__).parent
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        layer = parts[1] if len(parts) > 1 else "__init__"
        assert layer in rank, f"{module}: add its layer to LAYERS"
        for line, target in _imports(path, module):
            other = target.split(".")[1] if "." in target else "__init__"
            if rank.get(other, -1) > rank[layer]:
                upward.append(f"{module}:{line} imports {target}")
    assert not upward, upward


def test_no_analysis_imports_another():
    root = Path(nnforensics.__file__).parent
    crossing = []
    for analysis in ANALYSES:
        for path in sorted((root / analysis).rglob("*.py")):
            parts = path.relative_to(root.parent).with_suffix("").parts
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            for line, target in _imports(path, module):
                other = target.split(".")[1] if "." in target else ""
                if other in ANALYSES and other != analysis:
                    crossing.append(f"{module}:{line} imports {target}")
    assert not crossing, crossing
