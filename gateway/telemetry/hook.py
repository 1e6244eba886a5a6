"""The process's active recorder: installed by the runtime at start-up, removed at shutdown.
`gateway.record.record` hands every finished request to it. One runtime per process (as
`frugal serve` runs it); a second one installed later takes over until it closes."""

from typing import Protocol

from gateway.call import Call


class Recorder(Protocol):
    def record(self, call: Call) -> None: ...


_active: list[Recorder] = []


def install(recorder: Recorder) -> None:
    _active.append(recorder)


def uninstall(recorder: Recorder) -> None:
    if recorder in _active:
        _active.remove(recorder)


def current() -> Recorder | None:
    return _active[-1] if _active else None
