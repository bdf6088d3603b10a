"""The model.py AST pre-filter: one test per bypass class, and real-world code that must pass."""

from __future__ import annotations

import pytest

from gas.submissions.package import PackageError
from gas.submissions.static_check import (
    ALLOWED_MODULES,
    BLOCKED_MODULES,
    StaticCheckError,
    assert_clean,
    check_model_source,
)
from gas.submissions.templates import model_source
from gas.types import Modality

LOAD_MODEL = "\n\ndef load_model(weights_path, num_classes=2, **kwargs):\n    return None\n"


def _rules(src: str) -> set[str]:
    return {f.rule for f in check_model_source(src + LOAD_MODEL)}


BYPASSES = {
    "import os": ("import os", "import-blocked"),
    "from subprocess import": ("from subprocess import run", "import-blocked"),
    "import os.path as p": ("import os.path as p", "import-blocked"),
    "__import__": ("m = __import__('os')", "name-blocked"),
    "importlib.import_module": ("import importlib\nimportlib.import_module('os')", "import-blocked"),
    "getattr builtins": ("f = getattr(__builtins__, 'eval')", "name-blocked"),
    "subclasses walk": ("x = ().__class__.__bases__[0].__subclasses__()", "dunder-attribute"),
    "function globals": ("def f():\n    pass\n\ng = f.__globals__", "dunder-attribute"),
    "builtin method self": ("b = print.__self__", "dunder-attribute"),
    "__dict__ lookup": ("import torch\nl = torch.__dict__['load']", "dunder-attribute"),
    "frame globals": ("def g():\n    yield 1\n\nx = g().gi_frame.f_globals", "attribute-blocked"),
    "torch.ops.load_library": ("import torch\ntorch.ops.load_library('x.so')", "attribute-blocked"),
    "import ctypes": ("import ctypes", "import-blocked"),
    "torch.hub.load": ("import torch\nm = torch.hub.load('a/b', 'c')", "attribute-blocked"),
    "from torch import hub": ("from torch import hub", "import-blocked"),
    "torch.load": ("import torch\nsd = torch.load('w.pt')", "attribute-blocked"),
    "torch.load aliased module": ("import torch as T\nsd = T.load('w.pt')", "attribute-blocked"),
    "from torch import load": ("from torch import load as l", "import-blocked"),
    "torch.load via re-export": ("import safetensors.torch\nsafetensors.torch.torch.load('w')", "attribute-blocked"),
    "torch.load via rebinding": ("import torch.nn.functional as F\nt = F.torch\nt.load('w')", "attribute-blocked"),
    "torch.jit.script": ("import torch\nf = torch.jit.script(lambda x: x)", "attribute-blocked"),
    "cpp_extension": ("from torch.utils.cpp_extension import load_inline", "import-blocked"),
    "np.load allow_pickle": ("import numpy as np\na = np.load('x.npy', allow_pickle=True)", "pickle"),
    "np.load": ("import numpy as np\na = np.load('x.npy')", "attribute-blocked"),
    "numpy.ctypeslib": ("import numpy.ctypeslib", "import-blocked"),
    "weights_only=False": ("import x\nx.y(weights_only=False)", "pickle"),
    "open": ("data = open('/etc/passwd').read()", "name-blocked"),
    "pathlib read": ("from pathlib import Path\nt = Path('/etc/passwd').read_text()", "attribute-blocked"),
    "socket": ("import socket", "import-blocked"),
    "requests": ("import requests", "import-blocked"),
    "eval": ("x = eval('1 + 1')", "name-blocked"),
    "exec": ("exec('x = 1')", "name-blocked"),
    "compile": ("c = compile('1', 'f', 'eval')", "name-blocked"),
    "globals": ("g = globals()", "name-blocked"),
    "locals": ("g = locals()", "name-blocked"),
    "vars": ("import torch\nv = vars(torch)", "name-blocked"),
    "setattr": ("setattr(object, 'x', 1)", "name-blocked"),
    "eval passed as value": ("f = [eval][0]", "name-blocked"),
    "trust_remote_code": (
        "from transformers import AutoModel\nm = AutoModel.from_pretrained('.', trust_remote_code=True)",
        "remote-code",
    ),
    "trust_remote_code via **kwargs": ("f(**{'trust_remote_code': True})", "remote-code"),
    "pretrained download": ("import timm\nm = timm.create_model('resnet18', pretrained=True)", "download"),
    "torch.os": ("import torch\ntorch.os.system('id')", "attribute-blocked"),
    "private torch": ("import torch\ntorch._C._jit_set_profiling_mode(False)", "private-attribute"),
    "string annotation eval": ("def f(x: \"eval('1')\"):\n    pass", "name-blocked"),
    "format-string attribute walk": ("s = '{0.__globals__}'.format(len)", "dunder-string"),
    "subscript dunder": ("x = {}\ny = x['__builtins__']", "dunder-string"),
    "module as value": ("import torch\nm = [torch][0]", "module-as-value"),
    "star import": ("from torch import *", "import-star"),
    "relative import": ("from . import helper", "import-relative"),
    "not allow-listed": ("import lightgbm", "import-not-allowed"),
    "decord (URLs)": ("import decord", "import-blocked"),
    "ultralytics": ("from ultralytics import YOLO", "import-blocked"),
    "cv2 capture": ("import cv2\ncap = cv2.VideoCapture('http://x')", "attribute-blocked"),
    "typing eval": ("import typing\nh = typing.get_type_hints(f)", "attribute-blocked"),
    "breakpoint": ("breakpoint()", "name-blocked"),
}


@pytest.mark.parametrize("case", list(BYPASSES))
def test_bypass_classes_are_caught(case: str) -> None:
    src, rule = BYPASSES[case]
    assert rule in _rules(src), check_model_source(src + LOAD_MODEL)


@pytest.mark.parametrize("modality", list(Modality))
def test_templates_pass(modality: Modality) -> None:
    assert check_model_source(model_source(modality)) == []


BENIGN = '''
"""A timm/torchvision style detector."""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Optional

import numpy as np
import scipy.signal
import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
from safetensors.torch import load_file


@dataclass
class Cfg:
    dim: int = 64


class Block(nn.Module):
    def __init__(self, dim: int, act=partial(nn.GELU)) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        self.act = act()

    def forward(self, x: "torch.Tensor") -> torch.Tensor:
        if torch.jit.is_scripting():
            pass
        torch._assert(x.dim() == 2, "2d")
        return self.act(self.fc(x)) * math.sqrt(0.5)


class Net(nn.Module):
    def __init__(self, num_classes: int = 2, cfg: Optional[Cfg] = None) -> None:
        super().__init__()
        cfg = cfg or Cfg()
        self.blocks = nn.Sequential(OrderedDict(b0=Block(cfg.dim)))
        self.head = nn.Linear(cfg.dim, num_classes)
        self.register_buffer("win", torch.from_numpy(np.hanning(8).astype(np.float32)))

    def forward(self, x):
        x = rearrange(x.float() / 255, "b c h w -> b (c h w)")[:, :64]
        x = torch.utils.checkpoint.checkpoint(self.blocks, x, use_reentrant=False)
        return F.softmax(self.head(x), dim=-1).log()

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}()"


def load_model(weights_path, num_classes=2, **kwargs):
    model = Net(num_classes=num_classes)
    model.load_state_dict(load_file(str(Path(weights_path))), strict=True)
    _ = scipy.signal.get_window("hann", 4)
    return model.eval()


if __name__ == "__main__":
    print(load_model)
'''


def test_realistic_benign_model_passes() -> None:
    assert check_model_source(BENIGN) == []


def test_load_model_is_required() -> None:
    assert {f.rule for f in check_model_source("x = 1\n")} == {"load-model"}
    assert {f.rule for f in check_model_source("def load_model():\n    pass\n")} == {"load-model"}
    assert {f.rule for f in check_model_source("async def load_model(p):\n    pass\n")} == {"load-model"}
    assert check_model_source("def load_model(*args):\n    pass\n") == []
    inner = "class A:\n    def load_model(self, p):\n        pass\n"
    assert {f.rule for f in check_model_source(inner)} == {"load-model"}


def test_syntax_errors_are_findings() -> None:
    (f,) = check_model_source("def load_model(p):\n    return (\n")
    assert f.rule == "syntax" and f.line >= 2
    assert check_model_source("x = 1\x00")[0].rule == "syntax"
    deep = "x = " + "(" * 5000 + "1" + ")" * 5000 + "\n"
    assert check_model_source(deep)[0].rule == "syntax"


def test_assert_clean_lists_every_finding_with_lines() -> None:
    src = "import os\nimport subprocess\n\n\ndef load_model(p):\n    return eval('1')\n"
    with pytest.raises(StaticCheckError) as exc:
        assert_clean(src)
    err = exc.value
    assert isinstance(err, PackageError) and err.check == "static-check"
    assert [f.line for f in err.findings] == [1, 2, 6]
    text = str(err)
    assert "model.py:1:0" in text and "model.py:2:0" in text and "model.py:6:" in text
    assert_clean(model_source("image"))  # no exception


def test_allow_and_block_lists_do_not_overlap() -> None:
    assert not (ALLOWED_MODULES & BLOCKED_MODULES)
    for leaky in ("decord", "ultralytics", "os", "importlib", "pickle", "io"):
        assert leaky not in ALLOWED_MODULES
