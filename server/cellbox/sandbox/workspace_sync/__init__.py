"""Copy mode: the workspace reaches a sandbox through the engine's archive API.

When the engine cannot see the workspace's path (it runs on another machine),
the container gets a /workspace volume of its own instead of a bind mount.
This package owns keeping the two in step:

- which files go in: the workspace's files, `.gitignore` rules honoured (the
  root's and nested ones), `.git/` and `.cellbox/` never, within a size limit;
  plus the block files the sandbox writes into `.cellbox/` (selection.py, and
  packing.py for the tar they travel in);
- what the container was given, by size and mtime, so that before each run
  only what changed here goes in, and what was deleted here is deleted there
  (sync.py);
- after each run, what the run created, changed or deleted (a stamp file that
  the run's wrapper touches, then `find -newer` in one quick exec, read by
  listing.py), copied back into the workspace: regular files, folders and
  symlinks that stay inside it, never a path that climbs out or is absolute;
  when the daemon runs as root, owned by the user blocks run as (as
  the sandbox's `save_block` does). What was left out ends the block's output
  (report.py).

Everything in the workspace, and everything a run sends back, may be hostile,
so every path is opened through safe_files: resolved by the kernel beneath the
workspace (a link leading out is never followed), files read only while they
are regular and within a cap, files and links written in a handle on their
folder and renamed into place, modes stripped to 0o777 and owners and times
set on the new file's own handle. Symlinks are judged with every link on the
way followed, chains included: one leading out is not sent in, not copied
back, and after each pull every symlink copy mode knows of is judged again,
as a later link can change where an earlier one leads (`x -> .`, then
`u1 -> x/..`); those leading out are removed, and the block's output says so.
`.gitignore` files that are not regular files within IGNORE_FILE_LIMIT are
skipped with a warning.

Deletions go both ways, but a run's deletion only removes a local file still
as it was sent: a file edited here in the meantime is kept (and sent again).
Files a run makes are copied back even when `.gitignore` ignores them, as a
bind mount would show them. Only the Engine (engine/) talks to the engine; the
filesystem work runs in worker threads, never on the event loop.
"""

from cellbox.sandbox.workspace_sync.sync import WorkspaceSync

__all__ = ["WorkspaceSync"]
