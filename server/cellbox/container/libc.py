"""Calling a libc function from the warm runner, through `_ctypes` alone.

The runner needs prctl twice at start-up (the child subreaper, the seccomp
filter). The ctypes package would cost ~3 ms of start-up, which a cold
sandbox waits for; `_ctypes`, the C module under it, costs next to nothing.
Part of the runner: standard library only (see runner.py).
"""


def call(name, *args):
    """Call libc's `name` with C int arguments, or Pointer ones; its C int result."""
    import _ctypes

    class Libc:
        _handle = _ctypes.dlopen(None)  # type: ignore[arg-type]  # NULL: the program itself, libc included

    class CInt(_ctypes._SimpleCData):
        _type_ = "i"

    class CPointer(_ctypes._SimpleCData):
        _type_ = "P"

    class CFunction(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL
        _restype_ = CInt

    function = CFunction((name, Libc))  # type: ignore[arg-type]  # any object with a _handle will do
    return function(*(CPointer(a) if isinstance(a, Pointer) else a for a in args))


class Pointer(int):
    """An argument passed as a pointer, not a C int."""
