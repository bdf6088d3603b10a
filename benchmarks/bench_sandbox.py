"""Cost of the detector sandbox (a script, not a test).

    .venv/bin/python benchmarks/bench_sandbox.py [--threads 2] [--repeats 5] [--batch 32]

(a) start-up: open_sandbox() for a small model vs. a fresh process that imports torch and loads the
    same model in-process (the unsandboxed floor);
(b) per batch: a ResNet-50-sized CNN (plain torch, ~25.6M params, bottleneck blocks [3, 4, 6, 3]) on
    uint8 [B, 3, 224, 224] on the CPU, in-process forward vs. sandbox infer(), measured interleaved
    (A/B/A/B...) so machine drift hits both; overhead = (sandbox - in-process) / in-process;
(c) the bare IPC round trip with a no-op model for an image batch and a video batch.
Both sides use the same torch thread count. Reports medians (and the best run).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from gas.submissions.sandbox import SandboxLimits, SandboxSpec, _base_env, available_isolation, open_sandbox
from machine import cpu_model  # benchmarks/machine.py (the script's own folder)

RESNET = """
import torch
from torch import nn
from safetensors.torch import load_file


class Bottleneck(nn.Module):
    def __init__(self, cin, width, stride):
        super().__init__()
        cout = width * 4
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.down is None else self.down(x)
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return torch.relu(self.bn3(self.conv3(x)) + idt)


class ResNet50(nn.Module):
    def __init__(self, num_classes=2):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        layers, cin = [], 64
        for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for i in range(blocks):
                layers.append(Bottleneck(cin, width, stride if i == 0 else 1))
                cin = width * 4
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255)

    def forward(self, x):
        x = (x.float() - self.mean) / self.std
        return self.fc(self.layers(self.stem(x)).mean(dim=(2, 3)))


def load_model(weights_path, num_classes=2, **kwargs):
    model = ResNet50(num_classes)
    model.load_state_dict(load_file(weights_path))
    return model
"""

TINY = """
import torch
from safetensors.torch import load_file
class Tiny(torch.nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.fc = torch.nn.Linear(3, num_classes)
    def forward(self, x):
        return self.fc(x.float().mean(dim=tuple(range(2, x.dim()))))
def load_model(weights_path, num_classes=2, **kwargs):
    m = Tiny(num_classes)
    m.load_state_dict(load_file(weights_path))
    return m
"""

NOOP = """
import torch
class Noop(torch.nn.Module):
    def forward(self, x):
        return torch.zeros(x.shape[0], 2)
def load_model(weights_path, num_classes=2, **kwargs):
    return Noop()
"""


# The in-process baseline: a plain interpreter with the sandbox child's flags and env, no isolation.
WORKER = """
import importlib.util, sys, time
import numpy as np, torch
torch.set_num_threads({threads})
spec = importlib.util.spec_from_file_location("m", "{pkg}/model.py")
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
model = m.load_model("{pkg}/model.safetensors", num_classes=2).eval()
x = torch.from_numpy(np.random.default_rng(1).integers(0, 256, ({batch}, 3, 224, 224), dtype=np.uint8))
for line in sys.stdin:
    t0 = time.perf_counter()
    with torch.inference_mode():
        model(x)
    print(time.perf_counter() - t0, flush=True)
"""




def write_package(root: Path, source: str, state: dict) -> Path:
    from safetensors.torch import save_file

    root.mkdir(parents=True, exist_ok=True)
    (root / "model.py").write_text(textwrap.dedent(source))
    save_file(state, str(root / "model.safetensors"))
    return root


def load_in_process(pkg: Path):
    spec = importlib.util.spec_from_file_location("bench_model", pkg / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load_model(str(pkg / "model.safetensors"), num_classes=2).eval()


def in_process_startup(pkg: Path, threads: int) -> float:
    """The unsandboxed floor: a fresh interpreter with the child's flags and environment that
    imports torch and loads the model (what the sandbox start does, minus the isolation)."""
    code = textwrap.dedent(f"""
        import importlib.util
        import numpy, torch
        torch.set_num_threads({threads})
        spec = importlib.util.spec_from_file_location("m", {str(pkg / "model.py")!r})
        m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
        model = m.load_model({str(pkg / "model.safetensors")!r}, num_classes=2).eval()
        import time; print(time.time())
    """)
    env = _base_env(threads, tempfile.gettempdir())
    t0 = time.time()  # wall clock shared with the child: stop when loaded, not after its exit
    out = subprocess.run([sys.executable, "-B", "-s", "-c", code], env=env, capture_output=True, check=True)
    return float(out.stdout.decode().split()[-1]) - t0


def fmt(xs: list[float]) -> str:
    return f"median {statistics.median(xs) * 1e3:8.1f} ms   best {min(xs) * 1e3:8.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 16))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    limits = SandboxLimits(threads=args.threads, infer_timeout_s=600)
    iso = available_isolation()
    print(f"machine: {cpu_model()}, {os.cpu_count()} logical cores, {platform.system()} {platform.machine()}")
    print(f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}")
    print(f"isolation: {iso.value if iso else 'none'}; torch threads = {args.threads} on both sides; "
          f"repeats = {args.repeats}")  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        tmp = Path(tmp)
        torch.manual_seed(0)
        tiny_pkg = write_package(
            tmp / "tiny", TINY, {"fc.weight": torch.randn(2, 3), "fc.bias": torch.zeros(2)}
        )
        tiny_spec = SandboxSpec(package_dir=tiny_pkg, input_shape=(3, 224, 224))

        # (a) start-up
        print("\n(a) start-up, small model")
        sand, none, proc = [], [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            with open_sandbox(tiny_spec, limits=limits, device="cpu"):
                sand.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            with open_sandbox(
                tiny_spec, limits=limits, device="cpu", isolation="none", allow_unsandboxed=True
            ):
                none.append(time.perf_counter() - t0)
            proc.append(in_process_startup(tiny_pkg, args.threads))
        print(f"  open_sandbox, {iso.value if iso else 'none'} (namespaces, uid drop, limits):  {fmt(sand)}")
        print(f"  open_sandbox, isolation=none (child, limits, filters):  {fmt(none)}")
        print(f"  fresh process: import torch + load (floor):            {fmt(proc)}")
        print(
            f"  start-up overhead vs floor: {(statistics.median(sand) - statistics.median(proc)) * 1e3:+.0f} ms"
        )

        # (c) bare IPC round trip
        print("\n(c) IPC round trip, no-op model")
        for name, shape in (("image [32,3,224,224] uint8", (32, 3, 224, 224)),
                            ("video [32,16,3,224,224] uint8", (32, 16, 3, 224, 224))):  # fmt: skip
            pkg = write_package(tmp / f"noop{len(shape)}", NOOP, {"dummy": torch.zeros(1)})
            spec = SandboxSpec(package_dir=pkg, input_shape=shape[1:])
            x = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
            with open_sandbox(spec, limits=limits, device="cpu") as sb:
                sb.infer(x)
                rt = []
                for _ in range(max(args.repeats, 10)):
                    t0 = time.perf_counter()
                    sb.infer(x)
                    rt.append(time.perf_counter() - t0)
            print(f"  {name:<32} {x.nbytes / 1e6:6.1f} MB: {fmt(rt)}")

        # (b) ResNet-50 per batch
        print(f"\n(b) ResNet-50-sized CNN, batch {args.batch}, uint8 224x224, CPU")
        rn_pkg = tmp / "resnet"
        rn_pkg.mkdir()
        (rn_pkg / "model.py").write_text(RESNET)
        mod_spec = importlib.util.spec_from_file_location("resnet_src", rn_pkg / "model.py")
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
        net = module.ResNet50(2).eval()
        with torch.no_grad():  # non-trivial BN statistics
            for m in net.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.1, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
        params = sum(p.numel() for p in net.parameters())
        write_package(rn_pkg, RESNET, {k: v.contiguous() for k, v in net.state_dict().items()})
        rn_spec = SandboxSpec(package_dir=rn_pkg, input_shape=(3, 224, 224))
        model = load_in_process(rn_pkg)
        x = np.random.default_rng(1).integers(0, 256, (args.batch, 3, 224, 224), dtype=np.uint8)
        print(f"  params: {params / 1e6:.1f} M")
        worker = subprocess.Popen(
            [
                sys.executable,
                "-B",
                "-s",
                "-c",
                WORKER.format(pkg=str(rn_pkg), threads=args.threads, batch=args.batch),
            ],
            env=_base_env(args.threads, tempfile.gettempdir()),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        worker.stdin.write("go\n")  # warm-up
        worker.stdin.flush()
        worker.stdout.readline()

        def worker_forward() -> float:
            worker.stdin.write("go\n")
            worker.stdin.flush()
            return float(worker.stdout.readline())

        with open_sandbox(rn_spec, limits=limits, device="cpu") as sb:
            print(f"  sandbox start-up with ResNet-50 weights: {sb.startup_s:.2f} s")
            with torch.inference_mode():
                ref = model(torch.from_numpy(x)).numpy()
            out = sb.infer(x)  # warm-up
            with torch.inference_mode():
                model(torch.from_numpy(x))
            print(f"  max |sandbox - in-process| logits: {np.abs(out - ref).max():.2e}")
            base, here, sbx, fwd = [], [], [], []
            for _ in range(args.repeats):  # interleaved, one process computes at a time
                base.append(worker_forward())
                t0 = time.perf_counter()
                sb.infer(x)
                sbx.append(time.perf_counter() - t0)
                fwd.append(sb.last_forward_s or float("nan"))
                t0 = time.perf_counter()
                with torch.inference_mode():
                    model(torch.from_numpy(x))
                here.append(time.perf_counter() - t0)
        worker.stdin.close()
        worker.wait()
        mb, ms = statistics.median(base), statistics.median(sbx)
        print(f"  in-process forward, unsandboxed worker (child's env): {fmt(base)}")
        print(f"  in-process forward, this benchmark process:           {fmt(here)}")
        print(f"  sandbox infer() (forward + IPC):                      {fmt(sbx)}")
        print(f"  forward inside the sandbox child:                     {fmt(fwd)}")
        print(
            f"  overhead (sandbox - in-process worker) / in-process worker: median {100 * (ms - mb) / mb:+.1f} %, "
            f"best-vs-best {100 * (min(sbx) - min(base)) / min(base):+.1f} %"
        )
        ipc = statistics.median([a - b for a, b in zip(sbx, fwd, strict=True)])
        print(
            f"  IPC share of infer() (infer - child forward): median {ipc * 1e3:.1f} ms = {100 * ipc / ms:.2f} %"
        )


if __name__ == "__main__":
    main()
