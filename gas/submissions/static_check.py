"""AST pre-filter for a package's ``model.py``.

**This check is a pre-filter only. The sandbox is the security boundary.** Python cannot be made
safe by reading its source: the filter rejects the obvious and the known escape hatches early, with a
clear message, so that honest miners learn at ``gascli d validate`` time and dishonest ones have to
work harder. A package that passes is still run only inside the sandbox (no network, read-only
files, scrubbed environment, resource limits, wall-clock timeout).

What it checks, all without importing anything:

- imports: only modules on :data:`ALLOWED_MODULES` (and not under :data:`BLOCKED_CHAINS`); no
  relative or ``*`` imports;
- names: no :data:`BLOCKED_NAMES` (``eval``, ``exec``, ``getattr``, ``open``, ``__import__``...);
- attributes: no dunder outside :data:`ALLOWED_DUNDERS` (``__globals__``, ``__subclasses__``,
  ``__dict__``, ``__builtins__``...), no frame/code internals (``f_globals``, ``gi_frame``...), no
  :data:`BLOCKED_ATTRS` (file system, download and native-code entry points, whatever the object);
- attribute chains, resolved through import aliases and simple assignments and matched at any
  position (so ``safetensors.torch.torch.load`` is ``torch.load``): nothing under
  :data:`BLOCKED_CHAINS` (``torch.load``, ``torch.hub``, ``torch.ops``, ``torch.jit``,
  ``torch.utils.cpp_extension``, ``numpy.load``, ``numpy.ctypeslib``...); no private (``_x``)
  attribute of a module; no blocked module reached as an attribute (``torch.os``);
- keywords: ``trust_remote_code`` (any value, also as a string), ``allow_pickle=True``,
  ``weights_only=False``, ``pretrained=True`` (a download);
- strings: no blocked dunder inside a string literal (``x["__builtins__"]``, ``"{0.__globals__}"``);
  string annotations are parsed and checked like code (``typing`` evaluates them);
- a top-level ``def load_model(weights_path, ...)`` with at least one positional parameter.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from gas.submissions.package import PackageError

#: Importable modules (a module is allowed when it or a parent package is listed). Based on the
#: reference harness's documented list, minus the leaky ones: ``decord`` (opens URLs) and
#: ``ultralytics`` (downloads, spawns processes) are gone; ``pathlib`` and ``cv2`` stay but their
#: file-system and capture entry points are blocked attributes. ``torchvision``, ``timm``,
#: ``transformers``, ``cv2``... are allowed here but are not all installed in the sandbox image.
ALLOWED_MODULES: frozenset[str] = frozenset({
    # torch family
    "torch", "torchvision", "torchaudio",
    # ML libraries
    "transformers", "timm", "einops", "safetensors", "flash_attn", "fvcore",
    # media and numeric
    "PIL", "cv2", "skimage", "numpy", "scipy",
    # standard library without file system, process, network or introspection access
    "__future__", "math", "cmath", "functools", "typing", "typing_extensions", "collections",
    "dataclasses", "enum", "abc", "pathlib", "json", "re", "random", "itertools", "copy", "numbers",
    "string", "warnings", "logging", "time", "datetime", "contextlib", "fractions", "decimal",
    "statistics", "bisect", "heapq", "struct", "hashlib", "base64", "textwrap",
})

#: Explicitly blocked modules (anything not allowed is refused too; this list gives better messages
#: and also blocks these names when reached as attributes, e.g. ``torch.os``).
BLOCKED_MODULES: frozenset[str] = frozenset({
    # system and process
    "os", "sys", "subprocess", "shutil", "platform", "sysconfig", "site", "resource", "fcntl",
    "posix", "nt", "pwd", "grp", "pty", "tty", "termios", "signal", "atexit", "faulthandler",
    # network
    "socket", "ssl", "select", "selectors", "requests", "urllib", "urllib3", "http", "httpx",
    "aiohttp", "asyncio", "ftplib", "smtplib", "telnetlib", "poplib", "imaplib", "socketserver",
    "xmlrpc", "webbrowser", "huggingface_hub",
    # serialization and archives
    "pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle", "joblib", "copyreg",
    "yaml", "zipfile", "tarfile", "gzip", "bz2", "lzma", "zipimport", "h5py", "sqlite3", "dbm",
    # code loading and introspection
    "importlib", "imp", "pkgutil", "builtins", "__builtin__", "code", "codeop", "runpy", "types",
    "inspect", "gc", "ast", "dis", "linecache", "tokenize", "traceback", "trace", "operator",
    # file system and io
    "io", "tempfile", "glob", "fnmatch", "fileinput", "filecmp",
    # compilers and low level
    "ctypes", "cffi", "mmap", "numba", "cython", "Cython", "triton",
    # concurrency
    "multiprocessing", "concurrent", "threading", "_thread",
    # leaky media / model hubs
    "decord", "ultralytics", "onnx", "onnxruntime",
    # training, logging and cloud
    "apex", "deepspeed", "tensorboard", "wandb", "mlflow", "boto3", "botocore", "google", "azure",
    "psycopg2", "pymongo", "redis",
})

#: Dotted prefixes refused as imports and as attribute chains (matched at any position).
BLOCKED_CHAINS: frozenset[str] = frozenset({
    # torch: pickles, native code, compilers, hub downloads, processes, files
    "torch.load", "torch.save", "torch.hub", "torch.ops", "torch.classes", "torch.library",
    "torch.jit", "torch.utils", "torch.package", "torch.serialization", "torch.compile",
    "torch.from_file", "torch.multiprocessing", "torch.distributed", "torch.onnx", "torch.export",
    "torch.fx", "torch.profiler", "torch.autograd.profiler", "torch.cuda.jiterator",
    # numpy: pickles, files, native code
    "numpy.load", "numpy.save", "numpy.savez", "numpy.savez_compressed", "numpy.savetxt",
    "numpy.loadtxt", "numpy.genfromtxt", "numpy.fromfile", "numpy.memmap", "numpy.ctypeslib",
    "numpy.lib.npyio", "numpy.lib.format", "numpy.DataSource", "numpy.f2py", "numpy.distutils",
    "numpy.testing",
    # other allowed libraries' file, URL and download entry points
    "scipy.io", "scipy.datasets", "skimage.io", "skimage.data",
    "torchvision.io", "torchvision.datasets", "torchvision.utils",
    "torchaudio.load", "torchaudio.save", "torchaudio.info", "torchaudio.io", "torchaudio.datasets",
    "torchaudio.utils", "torchaudio.pipelines", "torchaudio.backend", "torchaudio.sox_effects",
    "torchaudio.kaldi_io",
    "transformers.dynamic_module_utils", "transformers.utils.hub", "transformers.pipeline",
    "transformers.pipelines",
    "PIL.ImageGrab", "PIL.ImageShow",
    "cv2.VideoCapture", "cv2.VideoWriter", "cv2.imread", "cv2.imwrite", "cv2.imreadmulti",
    "cv2.FileStorage", "cv2.dnn",
    "fvcore.common", "logging.config", "logging.handlers", "logging.FileHandler",
})

#: Exceptions inside blocked chains: harmless helpers that copied timm/torchvision code uses.
ALLOWED_CHAINS: frozenset[str] = frozenset({
    "torch.jit.is_scripting", "torch.jit.is_tracing", "torch.jit.unused", "torch.jit.ignore",
    "torch.jit.Final", "torch.jit.annotate", "torch.jit.export", "torch._assert",
    "torch.utils.checkpoint", "torch.utils.hooks",
})

#: Built-in names that must not be referenced at all (called or not).
BLOCKED_NAMES: frozenset[str] = frozenset({
    "eval", "exec", "compile", "__import__", "getattr", "setattr", "delattr", "globals", "locals",
    "vars", "open", "breakpoint", "input", "help", "license", "credits", "copyright", "__builtins__",
    "__loader__", "__spec__", "__build_class__",
})

#: Attribute names refused on any object (their owner cannot be known statically).
BLOCKED_ATTRS: frozenset[str] = frozenset({
    # frames, code objects, generators, tracebacks
    "f_globals", "f_locals", "f_builtins", "f_back", "f_code", "f_trace", "gi_frame", "gi_code",
    "cr_frame", "cr_code", "ag_frame", "ag_code", "tb_frame", "tb_next", "co_code", "co_consts", "mro",
    # file system (pathlib, PIL, numpy, cv2...)
    "open", "read_text", "read_bytes", "write_text", "write_bytes", "unlink", "rmdir", "mkdir",
    "makedirs", "touch", "rename", "symlink_to", "hardlink_to", "chmod", "lchmod", "chown",
    "iterdir", "glob", "rglob", "walk", "listdir", "scandir", "readlink", "fromfile", "tofile",
    "from_file", "memmap", "imread", "imwrite", "VideoCapture", "VideoWriter",
    # downloads and remote code
    "load_state_dict_from_url", "download_url_to_file", "hf_hub_download", "snapshot_download",
    "get_class_from_dynamic_module", "load_checkpoint", "push_to_hub", "save_pretrained",
    # native code, processes, dynamic imports, string evaluation
    "load_library", "load_inline", "system", "popen", "exec_module", "load_module", "import_module",
    "find_spec", "get_type_hints", "ForwardRef", "_eval_type",
})

#: Dunder names allowed as attributes, names and inside strings.
ALLOWED_DUNDERS: frozenset[str] = frozenset({
    "__init__", "__new__", "__call__", "__name__", "__qualname__", "__doc__", "__module__",
    "__class__", "__version__", "__main__", "__file__", "__future__", "__all__", "__slots__",
    "__post_init__", "__len__", "__getitem__", "__setitem__", "__delitem__", "__iter__", "__next__",
    "__enter__", "__exit__", "__repr__", "__str__", "__format__", "__hash__", "__bool__",
    "__contains__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__add__", "__sub__",
    "__mul__", "__matmul__", "__truediv__", "__floordiv__", "__mod__", "__pow__", "__neg__",
    "__pos__", "__abs__", "__invert__", "__and__", "__or__", "__xor__", "__radd__", "__rsub__",
    "__rmul__", "__rtruediv__", "__iadd__", "__isub__", "__imul__", "__float__", "__int__",
    "__index__", "__array__", "__torch_function__",
})

#: Real submodules whose last name is also a blocked top-level module.
SUBMODULE_EXCEPTIONS: frozenset[str] = frozenset({"scipy.signal", "torch.signal", "torch.types", "numpy.typing"})

_DUNDER_RE = re.compile(r"__[A-Za-z0-9_]+?__")


@dataclass(frozen=True)
class Finding:
    line: int
    col: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}:{self.col}: [{self.rule}] {self.message}"


class StaticCheckError(PackageError):
    """``model.py`` failed the static pre-filter; ``findings`` lists every problem."""

    def __init__(self, findings: list[Finding], filename: str = "model.py") -> None:
        self.findings = list(findings)
        lines = "\n".join(f"  {filename}:{f.line}:{f.col}: [{f.rule}] {f.message}" for f in self.findings)
        super().__init__(
            "static-check",
            f"{filename}: {len(self.findings)} problem(s) found by the static pre-filter:\n{lines}",
            file=filename,
        )


def _match(chain: str, prefixes: frozenset[str]) -> str | None:
    for p in prefixes:
        if chain == p or chain.startswith(p + "."):
            return p
    return None


def _blocked_chain(chain: str) -> str | None:
    """The blocked prefix ``chain`` falls under, unless an allowed exception covers it."""
    if _match(chain, ALLOWED_CHAINS):
        return None
    return _match(chain, BLOCKED_CHAINS)


def _bad_dunders(text: str) -> list[str]:
    return [d for d in _DUNDER_RE.findall(text) if d not in ALLOWED_DUNDERS]


class _Checker(ast.NodeVisitor):
    def __init__(self, tree: ast.AST, line_offset: int = 0) -> None:
        self.findings: list[Finding] = []
        self.line_offset = line_offset
        self.parents: dict[ast.AST, ast.AST] = {}
        self.aliases: dict[str, str] = {}  # local name -> dotted path
        self.module_aliases: set[str] = set()  # names bound by `import x`
        self.docstrings: set[int] = set()
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                    self.docstrings.add(id(body[0].value))
        self._collect_aliases(tree)

    # -- bookkeeping -------------------------------------------------------------------------------

    def add(self, node: ast.AST, rule: str, message: str) -> None:
        line = getattr(node, "lineno", 0) + self.line_offset
        f = Finding(line, getattr(node, "col_offset", 0), rule, message)
        if f not in self.findings:
            self.findings.append(f)

    def _collect_aliases(self, tree: ast.AST) -> None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        self.aliases[a.asname] = a.name
                        self.module_aliases.add(a.asname)
                    else:
                        top = a.name.split(".")[0]
                        self.aliases[top] = top
                        self.module_aliases.add(top)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    if a.name != "*":
                        self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        # `t = torch.nn.functional.torch` style re-bindings, a few rounds to follow chains of them
        for _ in range(3):
            for node in ast.walk(tree):
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    target = node.targets[0]
                    resolved = self.resolve(node.value)
                    if isinstance(target, ast.Name) and resolved:
                        self.aliases.setdefault(target.id, ".".join(resolved))

    def chain(self, node: ast.AST) -> list[str] | None:
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name):
            parts.append(node.id)
            return parts[::-1]
        return None

    def resolve(self, node: ast.AST) -> list[str] | None:
        """Dotted path of a Name/Attribute chain rooted at an imported name."""
        parts = self.chain(node)
        if not parts or parts[0] not in self.aliases:
            return None
        return self.aliases[parts[0]].split(".") + parts[1:]

    # -- imports -----------------------------------------------------------------------------------

    def check_module(self, node: ast.AST, module: str) -> None:
        top = module.split(".")[0]
        if top in BLOCKED_MODULES:
            self.add(node, "import-blocked", f"import of {module!r} is not allowed")
        elif top not in ALLOWED_MODULES:
            self.add(node, "import-not-allowed",
                     f"{module!r} is not on the import allow-list (see docs/detector-packages.md)")
        else:
            hit = _blocked_chain(module)
            if hit:
                self.add(node, "import-blocked", f"import of {module!r} is not allowed ({hit} is blocked)")

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self.check_module(node, a.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level or not node.module:
            self.add(node, "import-relative", "relative imports are not allowed (model.py is a single file)")
            return
        self.check_module(node, node.module)
        for a in node.names:
            if a.name == "*":
                self.add(node, "import-star", f"'from {node.module} import *' is not allowed")
                continue
            full = f"{node.module}.{a.name}"
            hit = _blocked_chain(full)
            if hit:
                self.add(node, "import-blocked", f"import of {full!r} is not allowed ({hit} is blocked)")
            elif a.name in BLOCKED_ATTRS or a.name in BLOCKED_NAMES or (
                a.name in BLOCKED_MODULES and full not in SUBMODULE_EXCEPTIONS
            ):
                self.add(node, "import-blocked", f"import of {full!r} is not allowed")
            elif a.name.startswith("__") and a.name not in ALLOWED_DUNDERS:
                self.add(node, "dunder-name", f"import of {full!r} is not allowed")
            elif node.module != "__future__" and a.name.startswith("_") and not a.name.startswith("__"):
                self.add(node, "private-attribute", f"import of private name {full!r} is not allowed")

    # -- names and attributes ----------------------------------------------------------------------

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            if node.id in BLOCKED_NAMES:
                self.add(node, "name-blocked", f"{node.id!r} is not allowed")
            elif node.id.startswith("__") and node.id.endswith("__") and node.id not in ALLOWED_DUNDERS:
                self.add(node, "dunder-name", f"{node.id!r} is not allowed")
            elif node.id in self.module_aliases:
                parent = self.parents.get(node)
                if not (isinstance(parent, ast.Attribute) and parent.value is node):
                    self.add(node, "module-as-value",
                             f"module {node.id!r} used as a value; use its attributes directly")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        attr = node.attr
        if attr.startswith("__") and attr.endswith("__") and attr not in ALLOWED_DUNDERS:
            self.add(node, "dunder-attribute", f"attribute {attr!r} is not allowed")
        elif attr in BLOCKED_ATTRS:
            self.add(node, "attribute-blocked", f"attribute {attr!r} is not allowed")
        parent = self.parents.get(node)
        if not (isinstance(parent, ast.Attribute) and parent.value is node):
            self.check_chain(node)
        self.generic_visit(node)

    def check_chain(self, node: ast.Attribute) -> None:
        """Check a maximal attribute chain, raw and resolved through aliases, at every position."""
        candidates = []
        raw = self.chain(node)
        if raw:
            candidates.append(raw)
        resolved = self.resolve(node)
        if resolved:
            candidates.append(resolved)
        for parts in candidates:
            for i in range(len(parts)):
                for j in range(len(parts), i, -1):
                    sub = ".".join(parts[i:j])
                    if _match(sub, ALLOWED_CHAINS):
                        break
                    if sub in BLOCKED_CHAINS:
                        self.add(node, "attribute-blocked", f"{'.'.join(parts)!r} is not allowed ({sub} is blocked)")
                        return
        if resolved:
            for k, seg in enumerate(resolved[1:], start=1):
                so_far = ".".join(resolved[: k + 1])
                if seg in BLOCKED_MODULES and so_far not in SUBMODULE_EXCEPTIONS:
                    self.add(node, "attribute-blocked",
                             f"{so_far!r} reaches the blocked module {seg!r} through another module")
                    return
                if seg.startswith("_") and not seg.startswith("__") and not _match(so_far, ALLOWED_CHAINS):
                    self.add(node, "private-attribute", f"private module attribute {so_far!r} is not allowed")
                    return

    # -- strings, keywords, annotations -----------------------------------------------------------

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and id(node) not in self.docstrings:
            bad = _bad_dunders(node.value)
            if bad:
                self.add(node, "dunder-string", f"string mentions {bad[0]!r}")
            if "trust_remote_code" in node.value:
                self.add(node, "remote-code", "trust_remote_code runs code that was never analysed")

    def visit_keyword(self, node: ast.keyword) -> None:
        value = node.value
        is_const = isinstance(value, ast.Constant)
        if node.arg == "trust_remote_code":
            self.add(value, "remote-code", "trust_remote_code runs code that was never analysed")
        elif node.arg == "allow_pickle" and not (is_const and value.value is False):
            self.add(value, "pickle", "allow_pickle must not be enabled: it unpickles arbitrary objects")
        elif node.arg == "weights_only" and not (is_const and value.value is True):
            self.add(value, "pickle", "weights_only must be True: anything else unpickles arbitrary objects")
        elif node.arg == "pretrained" and is_const and value.value is True:
            self.add(value, "download",
                     "pretrained=True downloads weights; ship them as safetensors in the package")
        self.generic_visit(node)

    def _annotation(self, ann: ast.AST | None) -> None:
        if ann is None:
            return
        for sub in ast.walk(ann):
            if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                try:
                    tree = ast.parse(sub.value.strip(), mode="eval")
                except (SyntaxError, ValueError, RecursionError, MemoryError):
                    continue
                inner = _Checker(tree, line_offset=getattr(sub, "lineno", 1) - 1 + self.line_offset)
                inner.aliases.update(self.aliases)
                inner.module_aliases |= self.module_aliases
                inner.visit(tree)
                for f in inner.findings:
                    self.add(sub, f.rule, f"in a string annotation: {f.message}")

    def visit_arg(self, node: ast.arg) -> None:
        self._annotation(node.annotation)
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._annotation(node.returns)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._annotation(node.annotation)
        self.generic_visit(node)


def _check_load_model(tree: ast.Module) -> Finding | None:
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name == "load_model":
            a = stmt.args
            if a.posonlyargs or a.args or a.vararg:
                return None
            return Finding(stmt.lineno, stmt.col_offset, "load-model",
                           "load_model must take the weights path as its first positional argument")
        if isinstance(stmt, ast.AsyncFunctionDef) and stmt.name == "load_model":
            return Finding(stmt.lineno, stmt.col_offset, "load-model", "load_model must not be async")
    return Finding(1, 0, "load-model",
                   "model.py must define a top-level function load_model(weights_path, num_classes=2, **kwargs)")


def check_model_source(source: str, filename: str = "model.py") -> list[Finding]:
    """Every finding for ``source``, in line order (empty when it passes)."""
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        return [Finding(exc.lineno or 0, exc.offset or 0, "syntax", f"syntax error: {exc.msg}")]
    except (ValueError, RecursionError, MemoryError) as exc:
        return [Finding(0, 0, "syntax", f"cannot parse: {type(exc).__name__}: {exc}")]
    checker = _Checker(tree)
    try:
        checker.visit(tree)
    except RecursionError:
        checker.findings.append(Finding(0, 0, "syntax", "code is nested too deeply to analyse"))
    findings = checker.findings
    lm = _check_load_model(tree)
    if lm:
        findings.append(lm)
    return sorted(findings, key=lambda f: (f.line, f.col, f.rule))


def assert_clean(source: str, filename: str = "model.py") -> None:
    """Raise :class:`StaticCheckError` listing every finding, if there is any."""
    findings = check_model_source(source, filename)
    if findings:
        raise StaticCheckError(findings, filename)
