"""A fake torch.cuda for CPU tests of the CUDA path: events remember the device and stream
they were recorded on and their (fake-clock) time, synchronisations are counted, and reading
an elapsed time before the event's synchronisation raises, as a wrong reading would be."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from latprof.measure.clocks import FakeClock


@dataclass(frozen=True)
class FakeStream:
    device: int


@dataclass(eq=False)
class FakeEvent:
    cuda: FakeCuda
    stream: FakeStream | None = None
    t_ns: int = 0
    synced: bool = False

    def record(self, stream: FakeStream | None = None) -> None:
        self.stream = stream or self.cuda.current_stream()
        self.t_ns = self.cuda.clock.now_ns
        self.synced = False
        self.cuda.recorded.append(self)

    def synchronize(self) -> None:
        self.cuda.syncs += 1
        for e in self.cuda.recorded:  # everything recorded before it on its stream is done
            if e.stream == self.stream and e.t_ns <= self.t_ns:
                e.synced = True

    def elapsed_time(self, end: FakeEvent) -> float:
        if not (self.synced and end.synced):
            raise RuntimeError("elapsed time read before the events were synchronised")
        return (end.t_ns - self.t_ns) / 1e6  # ms, as torch.cuda.Event.elapsed_time


@dataclass
class FakeCuda:
    clock: FakeClock
    current: int = 0
    syncs: int = 0
    recorded: list[FakeEvent] = field(default_factory=list)

    def current_device(self) -> int:
        return self.current

    def current_stream(self, device: Any = None) -> FakeStream:
        return FakeStream(self.current if device is None else int(device))

    def synchronize(self, device: Any = None) -> None:
        """torch.cuda.synchronize: every event recorded on the device so far is done."""
        self.syncs += 1
        wanted = self.current if device is None else int(device)
        for e in self.recorded:
            if e.stream is not None and e.stream.device == wanted:
                e.synced = True

    def Event(self, enable_timing: bool = False) -> FakeEvent:
        return FakeEvent(self)

    def devices(self) -> set[int]:
        return {e.stream.device for e in self.recorded if e.stream is not None}
