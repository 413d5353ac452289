"""Reading and writing files in a workspace the sandbox can write to.

Everything in a workspace may have been planted by a block or by the
repository: a symlink to /etc/shadow where a block's file goes, a FIFO where a
config file should be, `.gitignore` pointing at /dev/zero. Every path the
daemon opens in a workspace goes through here:

- it is resolved by the kernel with openat2(RESOLVE_BENEATH) from a handle on
  the workspace folder: symlinks are followed only while they stay inside it,
  `..` never climbs out, absolute links and /proc magic links are refused.
  Without openat2 (Linux < 5.6, or a seccomp filter that hides it) no symlink
  is followed at all (beneath.py);
- it must be a regular file: a FIFO, socket or device is never read or
  written (opened with O_NONBLOCK, so even opening one cannot hang);
- reads stop at a size cap (reading.py);
- what is written (a file, a symlink, a folder) is made in a handle on its
  folder, itself opened beneath the workspace; a name is replaced, never
  written through, and modes, owners and times are set on the new file's own
  handle, never through a path a link could redirect (writing.py);
- `resolve_beneath` follows every link on a path, chains included, and says
  where it leads, or that it leads out (links.py).

These are blocking calls: callers on the event loop run them in a thread.
"""

from cellbox.safe_files.beneath import (
    RefusedFile,
    TooLarge,
    folder,
    hand_over,
    is_regular_beneath,
    lstat_beneath,
    resolves_inside,
)
from cellbox.safe_files.links import resolve_beneath
from cellbox.safe_files.reading import read_named, read_regular
from cellbox.safe_files.writing import make_folder, remove_beneath, replace_regular, write_regular, write_symlink

__all__ = [
    "RefusedFile",
    "TooLarge",
    "folder",
    "hand_over",
    "is_regular_beneath",
    "lstat_beneath",
    "make_folder",
    "read_named",
    "read_regular",
    "remove_beneath",
    "replace_regular",
    "resolve_beneath",
    "resolves_inside",
    "write_regular",
    "write_symlink",
]
