"""What the daemon hands a container to start its warm runner: one Python
program, for `python3 -I -S -c PROGRAM RUN_DIR` (scripts.SANDBOX_MAIN).

The runner is made of modules of this package (RUNNER_MODULES), but a
container gets no files from us: nothing is baked into the image or copied
in. So the program carries their sources, and a few lines in front run each
one as a module registered in `sys.modules` under its real dotted name, in
RUNNER_MODULES' order. The runner's `from cellbox.container.x import y` lines
then find the same code in the container as on the host, and the runner's
unit tests start this very program. This module runs on the daemon's side
only and is not shipped.
"""

from importlib import resources

RUNNER_MODULES = ("libc", "processes", "seccomp", "warm_python", "runner")
"""The runner's modules in cellbox.container, each after those it imports."""

_BOOTSTRAP = '''\
import sys


def ship(name, source, package=False):
    module = sys.modules[name] = type(sys)(name)
    if package:
        module.__path__ = []
    exec(source, module.__dict__)


ship("cellbox", "", package=True)
ship("cellbox.container", "", package=True)
'''
"""The packages are empty: the host's __init__ modules are not the runner's business.
`exec(source)`, not `exec(compile(source, name, "exec"))`, although tracebacks
then say "<string>": compile() sets up the ast module's ~120 node types the
first time it is called (PyAST_Check), ~0.8 ms of the runner's start-up."""

_START = '''
from cellbox.container.runner import main

main(sys.argv[1])
'''


def runner_program() -> str:
    """The runner as one program: the argument of `python3 -I -S -c`."""
    package = resources.files(__package__)
    calls = []
    for name in RUNNER_MODULES:
        source = package.joinpath(f"{name}.py").read_text(encoding="utf-8")
        calls.append(f"ship({f'{__package__}.{name}'!r}, {source!r})\n")
    return _BOOTSTRAP + "".join(calls) + _START


FIGURES_MODULE = "cellbox_figures"
"""The matplotlib backend's module name in the sandbox (container/figures.py)."""


def figures_source() -> str:
    """container/figures.py, which the daemon writes as cellbox_figures.py into RUN_DIR/python."""
    return resources.files(__package__).joinpath("figures.py").read_text(encoding="utf-8")


KERNEL_LAUNCHER = "cellbox_kernel_launch.py"
"""container/kernel_launch.py's name in RUN_DIR, where sessions start kernels with it."""


def kernel_launcher_source() -> str:
    return resources.files(__package__).joinpath("kernel_launch.py").read_text(encoding="utf-8")


ZYGOTE = "cellbox_zygote.py"
"""container/zygote.py's name in RUN_DIR: the runner starts the warm Python interpreter with it."""


def zygote_source() -> str:
    return resources.files(__package__).joinpath("zygote.py").read_text(encoding="utf-8")
