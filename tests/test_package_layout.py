"""The package's layout: no module is shadowed by a function of the same name, no import circles."""

from __future__ import annotations

import importlib
import pkgutil
import types

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
