"""Make PyPI's (CUDA) torchvision importable beside a CPU build of torch.

vLLM's CPU wheel pulls torchvision from PyPI, whose C++ extension cannot load
against `torch==*+cpu`. Its Python parts still work (LLaVA's image processing
needs `torchvision.transforms.v2`), but `import torchvision` crashes because it
registers fake kernels for `torchvision::nms` / `torchvision::qnms` even when
the extension failed to load (without this file: `python -c "import torchvision"` in the venv fails with
'operator torchvision::nms does not exist'). Defining those two op
schemas first avoids the crash.

`make setup` copies this file into the venv's site-packages as
`_cxr_torchvision_fix.py`, with a `.pth` line that imports it, only when torch
is a CPU build. The hook is lazy: it does nothing until something imports
torchvision, so other processes in the venv do not pay for importing torch.
"""

import importlib.abc
import sys

_SCHEMAS = {
    "torchvision::nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "torchvision::qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}


def define_missing_ops() -> None:
    import torch

    for name, schema in _SCHEMAS.items():
        namespace, op = name.split("::")
        if not hasattr(getattr(torch.ops, namespace), op):
            torch.library.define(name, schema)


class _BeforeTorchvision(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torchvision":
            sys.meta_path.remove(self)
            define_missing_ops()
        return None  # the regular finders import torchvision itself


def install() -> None:
    if "torchvision" in sys.modules:
        return
    if not any(isinstance(finder, _BeforeTorchvision) for finder in sys.meta_path):
        sys.meta_path.insert(0, _BeforeTorchvision())
