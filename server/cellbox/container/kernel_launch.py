"""cellbox_kernel_launch: start a Jupyter kernel by its kernelspec name, in
the container, as `jupyter kernel` would, with nothing but the standard
library (the image need not have jupyter_client).

    python3 -I cellbox_kernel_launch.py NAME CONNECTION_FILE

The daemon writes this source into its read-only folder for the runner
(RUN_DIR) and runs it as a session's kept run. It finds NAME's kernel.json
in Jupyter's data folders, puts the connection file into the spec's argv and
execs it: the kernel is then the run's own process, which the runner
interrupts, measures and kills. A name with no kernelspec exits 127 with the
kernels there are; "python3" falls back to this Python's ipykernel, which pip
can install without a kernelspec.
"""

import json
import os
import re
import sys

NOT_FOUND = 127


def data_folders():
    """Jupyter's data search path, as jupyter_core.paths.jupyter_path() orders it."""
    folders = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    folders.append(os.environ.get("JUPYTER_DATA_DIR") or os.path.expanduser("~/.local/share/jupyter"))
    folders.append(os.path.join(sys.prefix, "share", "jupyter"))
    folders += ["/usr/local/share/jupyter", "/usr/share/jupyter"]
    return folders


def find_spec(name):
    for folder in data_folders():
        resource_dir = os.path.join(folder, "kernels", name)
        try:
            with open(os.path.join(resource_dir, "kernel.json"), encoding="utf-8") as f:
                return resource_dir, json.load(f)
        except (OSError, ValueError):
            continue
    return None, None


def known_kernels():
    names = set()
    for folder in data_folders():
        try:
            names.update(os.listdir(os.path.join(folder, "kernels")))
        except OSError:
            continue
    return sorted(names)


def main(name, connection_file):
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        sys.exit("cellbox: %r is not a kernel name" % name)
    resource_dir, spec = find_spec(name)
    if spec is None and name == "python3":
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", connection_file]
        os.execv(argv[0], argv)
    if spec is None or not isinstance(spec.get("argv"), list) or not spec["argv"]:
        print(
            "cellbox: no Jupyter kernel named %r in the sandbox image (kernels there: %s)"
            % (name, ", ".join(known_kernels()) or "none"),
            file=sys.stderr,
        )
        sys.exit(NOT_FOUND)
    argv = [
        str(arg).replace("{connection_file}", connection_file).replace("{resource_dir}", resource_dir)
        for arg in spec["argv"]
    ]
    env = dict(os.environ)
    for key, value in (spec.get("env") or {}).items():
        env[str(key)] = os.path.expandvars(str(value))
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        print("cellbox: the kernel %r could not start %s: %s" % (name, argv[0], exc.strerror), file=sys.stderr)
        sys.exit(NOT_FOUND)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
