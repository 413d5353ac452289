"""cellbox_figures: a matplotlib backend for script-mode blocks, in the
container. `plt.show()` hands each open figure to the daemon as a PNG (a rich
output, as a Jupyter kernel's inline backend does), where a desktop backend
would open a window and a plain Agg one would warn that it cannot show.

The daemon writes this source as `cellbox_figures.py` into its read-only
folder for the runner (RUN_DIR/python); the runner puts that folder on a
script's PYTHONPATH and sets MPLBACKEND=module://cellbox_figures, unless the
block's environment names a backend of its own. A figure travels as one JSON
line over the runner's abstract Unix socket named in CELLBOX_DISPLAY
("NAME:RUN_ID"): no file, no descriptor the block inherits. Without that
variable (a process started some other way) figures are closed unseen, as
Agg would leave them.
"""

import base64
import io
import json
import os
import socket

from matplotlib._pylab_helpers import Gcf
from matplotlib.backend_bases import _Backend
from matplotlib.backends.backend_agg import _BackendAgg

MOST_BYTES = 16 << 20
"""A larger figure is not sent (the runner drops longer lines anyway)."""


def _send(bundle):
    where = os.environ.get("CELLBOX_DISPLAY", "")
    name, _, run_id = where.rpartition(":")
    if not name or not run_id:
        return
    line = run_id.encode() + b" " + json.dumps(bundle).encode() + b"\n"
    if len(line) > MOST_BYTES:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        try:
            connection.connect("\0" + name)
            connection.sendall(line)
        except OSError:
            pass


@_Backend.export
class _BackendCellbox(_BackendAgg):
    @classmethod
    def show(cls, *args, **kwargs):
        for manager in Gcf.get_all_fig_managers():
            figure = manager.canvas.figure
            picture = io.BytesIO()
            figure.savefig(picture, format="png")
            _send({"image/png": base64.b64encode(picture.getvalue()).decode(), "text/plain": repr(figure)})
        Gcf.destroy_all()
