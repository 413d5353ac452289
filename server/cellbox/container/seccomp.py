"""The seccomp filter the warm runner puts on itself, and so on every block:
no block can make a setuid or setgid file.

Part of the runner: standard library only (see runner.py).
"""

import os

from cellbox.container.libc import Pointer, call

# Syscalls that can make a file setuid or setgid, by architecture: (number,
# index of the mode argument); and syscalls refused outright. openat2 and
# io_uring carry their mode where a filter cannot look.
_SETID_SYSCALLS = {
    0xC000003E: (  # x86_64
        ((90, 1), (91, 1), (268, 2), (452, 2), (2, 2), (257, 3), (85, 1), (133, 1), (259, 2)),
        (437, 425),
    ),
    0xC00000B7: (  # aarch64
        ((52, 1), (53, 2), (452, 2), (56, 3), (33, 2)),
        (437, 425),
    ),
}


def forbid_setid_files():
    """A seccomp filter, stacked on the engine's, under which no block can
    make a setuid or setgid file: the workspace is on the host, and a
    setuid-root program a root block left there would give any user of the
    host root (a nosuid mount only stops it running inside the sandbox).
    chmod-like and create-like calls with those mode bits fail with EPERM;
    openat2 says ENOSYS (libc falls back to openat) and io_uring EPERM; other
    architectures' syscalls (i386, x32) are refused. Needs no_new_privs,
    which the sandbox has by default; without it, no filter."""
    import struct

    arch = None
    machine = os.uname().machine
    if machine == "x86_64":
        arch = 0xC000003E
    elif machine == "aarch64":
        arch = 0xC00000B7
    if arch is None:
        return False
    checks, refused = _SETID_SYSCALLS[arch]
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38
    ld, jeq, jset, ret = 0x20, 0x15, 0x45, 0x06  # BPF_LD|W|ABS, JMP|JEQ|K, JMP|JSET|K, RET|K
    program = [(ld, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, eperm), (ld, 0, 0, 0)]
    if arch == 0xC000003E:
        program.append((0x35, 0, 1, 0x40000000))  # JGE: x32 syscalls
        program.append((ret, 0, 0, eperm))
    for number in refused:
        program += [(jeq, 0, 1, number), (ret, 0, 0, enosys if number == 437 else eperm)]
    for number, index in checks:
        # If nr matches: load the mode argument's low word, refuse setid bits;
        # if not, jump over the 4 instructions that do it to the next check.
        program += [
            (jeq, 0, 4, number), (ld, 0, 0, 16 + 8 * index), (jset, 0, 1, 0o6000),
            (ret, 0, 0, eperm), (ret, 0, 0, allow),
        ]
    program.append((ret, 0, 0, allow))
    import _ctypes

    class Filter(_ctypes.Array):
        _type_ = type("CChar", (_ctypes._SimpleCData,), {"_type_": "c"})
        _length_ = 8 * len(program)

    class Fprog(_ctypes.Array):
        _type_ = Filter._type_
        _length_ = 16

    instructions = Filter.from_buffer_copy(b"".join(struct.pack("=HBBI", *i) for i in program))
    fprog = Fprog.from_buffer_copy(struct.pack("=HxxxxxxQ", len(program), _ctypes.addressof(instructions)))
    try:
        # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        return call("prctl", 22, 2, Pointer(_ctypes.addressof(fprog)), 0, 0) == 0
    except Exception:
        return False
