"""A test double for torchvision, so that torch-fidelity's own code runs in the tests where torchvision cannot load.

torch-fidelity 0.4.0 imports torchvision at module level (`datasets.py`: `from torchvision.datasets import CIFAR10,
STL10, CIFAR100` and `import torchvision.transforms.functional as F`; `utils.py` and the CLIP, DINOv2 and VGG16
extractors: `import torchvision`), yet its InceptionV3 extractor and its FID, KID, IS and precision/recall functions
use torch and NumPy alone. Where `import torch_fidelity` fails only because torchvision is missing or cannot load
(a CPU-only torch beside PyPI's CUDA torchvision raises `RuntimeError: operator torchvision::nms does not exist`),
`fidelity_imported()` puts this double into sys.modules for the duration of a block: it holds only those names, and
using any of them raises `RuntimeError("torchvision test double: ...")`. A torchvision that loads is used as is.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import sys
from types import ModuleType
from typing import Any, Callable, Iterator, NoReturn

import pytest

__all__ = ["PREFIX", "MODULES", "CLASSES", "USED", "make_double", "torchvision_failure", "fidelity_imported"]

#: How every error and report line of the double begins
PREFIX = "torchvision test double"
#: The torchvision modules torch-fidelity 0.4.0 imports when it is imported
MODULES = ("torchvision", "torchvision.datasets", "torchvision.transforms", "torchvision.transforms.functional")
#: The names it imports from them (`from torchvision.datasets import ...`)
CLASSES = {"torchvision.datasets": ("CIFAR10", "STL10", "CIFAR100")}
#: One report line per distinct reason the double was put in place (printed at the end of the pytest session)
USED: dict[str, None] = {}


def _refuse(what: str) -> NoReturn:
    """The error every use of the double raises."""
    raise RuntimeError(f"{PREFIX}: {what} is not available here (torchvision cannot be imported, so the tests put a "
                       "stand-in into sys.modules that holds only the names torch-fidelity imports)")


def _unavailable_class(qualified: str) -> type:
    """A class named like torchvision's that raises when instantiated."""
    return type(qualified.rsplit(".", 1)[1], (), {"__init__": lambda self, *args, **kwargs: _refuse(qualified),
                                                  "__module__": qualified.rsplit(".", 1)[0]})


def _module_getattr(module_name: str) -> Callable[[str], Any]:
    """A PEP 562 `__getattr__` that raises the double's RuntimeError for any other public name."""
    def getattr_(name: str) -> Any:
        if name.startswith("__"):  # introspection (copy, pickle, inspect) sees an ordinary module
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        _refuse(f"{module_name}.{name}")
    return getattr_


def make_double() -> dict[str, ModuleType]:
    """The double's modules by their sys.modules names, each submodule an attribute of its parent."""
    modules: dict[str, ModuleType] = {}
    for name in MODULES:
        module = ModuleType(name, f"{PREFIX}: only the names torch-fidelity imports; each raises RuntimeError if used")
        module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
        module.__path__ = []
        module.__getattr__ = _module_getattr(name)
        for cls in CLASSES.get(name, ()):
            setattr(module, cls, _unavailable_class(f"{name}.{cls}"))
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(modules[parent], child, module)
        modules[name] = module
    return modules


def torchvision_failure() -> str | None:
    """Why `import torchvision` fails here ('ExceptionType: first line'), or None when it loads."""
    try:
        importlib.import_module("torchvision")
    except Exception as exc:  # noqa: BLE001 - a torchvision built for another torch raises RuntimeError
        return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:120]}"
    return None


def _ours(name: str) -> bool:
    """Whether a sys.modules entry is torchvision's or torch-fidelity's."""
    return name.split(".", 1)[0] in ("torchvision", "torch_fidelity")


def _import_fidelity() -> ModuleType:
    """torch_fidelity: as it imports, else with the double when torchvision alone is the cause; a skip when it is not
    installed, a failure when it is installed but broken for another reason."""
    try:
        return importlib.import_module("torch_fidelity")
    except Exception as exc:  # noqa: BLE001 - see torchvision_failure
        first = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:120]}"
    if importlib.util.find_spec("torch_fidelity") is None:
        pytest.skip("torch-fidelity is not installed, so its real-library tests cannot run: "
                    "pip install --no-deps torch-fidelity==0.4.0 (as .ci/run does)")
    reason = torchvision_failure()
    if reason is None:
        pytest.fail(f"torch_fidelity is installed but cannot be imported ({first}), and torchvision loads, so the "
                    "torchvision test double cannot help")
    for name in [name for name in sys.modules if _ours(name)]:  # what the failed imports left half-done
        del sys.modules[name]
    sys.modules.update(make_double())
    try:
        fidelity = importlib.import_module("torch_fidelity")
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"torch_fidelity cannot be imported even with the {PREFIX} ({type(exc).__name__}: "
                    f"{(str(exc).splitlines() or [''])[0][:120]}): something besides torchvision is missing")
    USED[f"{PREFIX}: torch-fidelity {fidelity.__version__}'s own code ran (InceptionV3 extractor, FID/KID/IS/PRC) "
         f"with a stand-in torchvision in sys.modules, because torchvision cannot be imported here ({reason})"] = None
    return fidelity


@contextlib.contextmanager
def fidelity_imported() -> Iterator[ModuleType]:
    """torch_fidelity for the duration of the block (see `_import_fidelity`); afterwards sys.modules holds again the
    torchvision and torch_fidelity entries it held before, so no later test sees the double."""
    saved = {name: module for name, module in sys.modules.items() if _ours(name)}
    try:
        yield _import_fidelity()
    finally:
        for name in [name for name in sys.modules if _ours(name)]:
            del sys.modules[name]
        sys.modules.update(saved)
