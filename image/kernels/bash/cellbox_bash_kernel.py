"""A Jupyter kernel for bash, baked into cellbox's sandbox image by
scripts/build-image (kernelspec "bash"), so that session mode keeps a shell's
state between blocks: variables, functions, the working directory.

One bash process lives as long as the kernel. It reads its commands from a
pipe of ours (a script at /dev/fd/N), never from stdin, so a block that reads
stdin gets /dev/null instead of our commands. Each block is saved to a file
of the kernel's and sourced by a function, which reports the block's exit
status on a second pipe; the block's stdout and stderr are pipes the kernel
streams as they come. No terminal, no prompt to parse.

A block that ends the shell (`exit`) ends the kernel, with the shell's code.

Interrupt: ipykernel turns SIGINT into KeyboardInterrupt here; the kernel
sends SIGINT to the shell's process group. The shell's INT trap, set for the
time of one block, returns from it with status 130: the rest of the block
does not run, the shell and its state stay.
"""

import os
import selectors
import signal
import subprocess
import tempfile
import time

from ipykernel.kernelapp import IPKernelApp
from ipykernel.kernelbase import Kernel

DRIVER = r"""
__cellbox_block() {
    trap 'trap - INT; return 130' INT
    . "$1" {commands}<&- {status}>&- </dev/null
    __cellbox_status=$?
    trap - INT
    # Its background jobs are swept once it ends: no "Killed" notes in the next block.
    disown -a
    printf '%s\n' "$__cellbox_status" >&{status}
}
"""


class BashKernel(Kernel):
    implementation = "cellbox-bash"
    implementation_version = "1"
    language = "bash"
    language_version = ""
    language_info = {"name": "bash", "mimetype": "text/x-sh", "file_extension": ".sh", "codemirror_mode": "shell"}
    banner = "bash, run by cellbox's kernel"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._folder = tempfile.mkdtemp(prefix="cellbox-bash-")
        commands_r, self._commands = os.pipe()
        self._status, status_w = os.pipe()
        # The shell starts now, not on the first block: the daemon tells the
        # sandbox's runner, once the kernel is ready, that it belongs to the
        # kernel (leftover sweeps then spare it; what it starts they do not).
        # SIGINT at its default in the shell: ipykernel ignores it outside a
        # request, and a signal ignored when bash starts cannot be trapped.
        self._shell = subprocess.Popen(
            ["bash", "--noprofile", "--norc", "/dev/fd/%d" % commands_r],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=(commands_r, status_w), start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        os.close(commands_r)
        os.close(status_w)
        driver = DRIVER.replace("{commands}", str(commands_r)).replace("{status}", str(status_w))
        os.write(self._commands, driver.encode())
        self._count = 0

    def do_execute(self, code, silent, store_history=True, user_expressions=None, allow_stdin=False):
        if not code.strip():
            return self._reply("ok")
        self._count += 1
        path = os.path.join(self._folder, "block-%d.sh" % self._count)
        with open(path, "w", encoding="utf-8") as f:
            f.write(code if code.endswith("\n") else code + "\n")
        os.write(self._commands, ("__cellbox_block %s\n" % path).encode())
        status = self._stream_until_done(silent)
        os.unlink(path)
        if status is None:
            # The block ended the shell (`exit 3`): the kernel ends with it,
            # with its code, as a Python kernel does on os._exit; the daemon
            # says the state is lost and the next block starts a new one.
            # The short wait lets the iopub thread send what the block wrote.
            code = self._shell.wait()
            time.sleep(0.2)
            os._exit(code if 0 < code < 256 else 1)
        if status == 0:
            return self._reply("ok")
        return self._fail(silent, "exit code %d" % status)

    def _stream_until_done(self, silent):
        """The block's output, streamed, until its status arrives; None if the shell died."""
        streams = {self._shell.stdout.fileno(): "stdout", self._shell.stderr.fileno(): "stderr"}
        selector = selectors.DefaultSelector()
        for fd in (*streams, self._status):
            selector.register(fd, selectors.EVENT_READ)
        status = b""
        try:
            while True:
                try:
                    ready = selector.select()
                except KeyboardInterrupt:
                    os.killpg(self._shell.pid, signal.SIGINT)
                    continue
                for key, _ in ready:
                    data = os.read(key.fd, 65536)
                    if key.fd == self._status:
                        if not data:
                            return None
                        status += data
                    elif data:
                        self._send(silent, streams[key.fd], data)
                    else:
                        selector.unregister(key.fd)
                if status.endswith(b"\n"):
                    # All the block wrote is in the pipes by now: read it before the reply.
                    for fd, name in streams.items():
                        self._drain(silent, fd, name)
                    return int(status.split()[-1])
        finally:
            selector.close()

    def _drain(self, silent, fd, name):
        os.set_blocking(fd, False)
        try:
            while data := os.read(fd, 65536):
                self._send(silent, name, data)
        except BlockingIOError:
            pass
        finally:
            os.set_blocking(fd, True)

    def _send(self, silent, name, data):
        if not silent:
            text = data.decode("utf-8", "replace")
            self.send_response(self.iopub_socket, "stream", {"name": name, "text": text})

    def _reply(self, status, **more):
        return {"status": status, "execution_count": self.execution_count, "payload": [], "user_expressions": {},
                **more}

    def _fail(self, silent, evalue):
        error = {"ename": "ExitCode", "evalue": evalue, "traceback": [evalue]}
        if not silent:
            self.send_response(self.iopub_socket, "error", error)
        return self._reply("error", **error)

    def do_shutdown(self, restart):
        try:
            os.killpg(self._shell.pid, signal.SIGKILL)
        except OSError:
            pass
        return super().do_shutdown(restart)


if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=BashKernel)
