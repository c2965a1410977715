"""The four spike event queues, as plain Python containers with the semantics of DESIGN.md §3.

One queue object holds every in-flight event of one projection in one trial. Events are pushed
at the end of the step that emits them and popped at the start of their delivery step. When
nothing overflows, every kind delivers the same events in the same steps; they differ in what
they hold (per target neuron, per synapse) and in what a full queue drops:

    ring    per target and delivery step, `capacity` events; drops the newest
            (grid timing with additive effects: summed per slot, never full)
    fifo    per synapse, `capacity` events in push order; drops the newest
    heap    per target, `capacity` events ordered by time; drops the newest
    sorted  per target, `capacity` events kept in time order; keeps the `capacity` earliest
"""

from __future__ import annotations

import bisect
import heapq
from collections import defaultdict, deque
from typing import NamedTuple

import numpy as np

from qgen.errors import Code, SimulationError


class Event(NamedTuple):
    time: float  # arrival time (ms); events are ordered by (time, synapse)
    synapse: int  # index in the projection's synapse arrays
    step: int  # delivery step
    source: int = -1  # the backward pass's index of the emitting spike


class Queue:
    """Base: drop accounting and strict mode."""

    def __init__(self, name: str, post: np.ndarray, capacity: int, strict: bool) -> None:
        self.name = name
        self.post = post  # target neuron of each synapse
        self.capacity = capacity
        self.strict = strict
        self.drops = 0
        self.dropped: set[tuple[str, int, float]] | None = None  # when gradients are wanted: which events

    def push(self, event: Event) -> None:
        raise NotImplementedError

    def pop_due(self, step: int) -> list[Event]:
        """Every event whose delivery step has come, in (time, synapse) order."""
        raise NotImplementedError

    def _drop(self, event: Event) -> None:
        self.drops += 1
        if self.dropped is not None:
            self.dropped.add((self.name, event.synapse, event.time))
        if self.strict:
            kind = type(self).__name__.removesuffix("Queue").lower()
            raise SimulationError(
                Code.QUEUE_OVERFLOW,
                f"projection {self.name}: the {kind} queue of capacity {self.capacity} is full; an event for "
                f"neuron {int(self.post[event.synapse])} arriving at {event.time:.6g} ms was dropped",
                hint=f"raise the capacity (queue = {kind}(capacity = {2 * self.capacity})) or run without strict")


class RingQueue(Queue):
    def __init__(self, name: str, post: np.ndarray, capacity: int, strict: bool, summing: bool) -> None:
        super().__init__(name, post, capacity, strict)
        self.summing = summing
        self.slots: dict[int, dict[int, list[Event]]] = defaultdict(lambda: defaultdict(list))

    def push(self, event: Event) -> None:
        slot = self.slots[event.step][int(self.post[event.synapse])]
        if not self.summing and len(slot) >= self.capacity:
            self._drop(event)
        else:
            slot.append(event)

    def pop_due(self, step: int) -> list[Event]:
        due = self.slots.pop(step, {})
        return sorted(e for events in due.values() for e in events)


class FifoQueue(Queue):
    def __init__(self, name: str, post: np.ndarray, capacity: int, strict: bool) -> None:
        super().__init__(name, post, capacity, strict)
        self.buffers: dict[int, deque[Event]] = {}

    def push(self, event: Event) -> None:
        buffer = self.buffers.setdefault(event.synapse, deque())
        if len(buffer) >= self.capacity:
            self._drop(event)
        else:
            buffer.append(event)

    def pop_due(self, step: int) -> list[Event]:
        due = []
        for synapse in list(self.buffers):
            buffer = self.buffers[synapse]
            while buffer and buffer[0].step <= step:
                due.append(buffer.popleft())
            if not buffer:
                del self.buffers[synapse]
        return sorted(due)


class HeapQueue(Queue):
    def __init__(self, name: str, post: np.ndarray, capacity: int, strict: bool) -> None:
        super().__init__(name, post, capacity, strict)
        self.heaps: dict[int, list[Event]] = {}

    def push(self, event: Event) -> None:
        heap = self.heaps.setdefault(int(self.post[event.synapse]), [])
        if len(heap) >= self.capacity:
            self._drop(event)
        else:
            heapq.heappush(heap, event)

    def pop_due(self, step: int) -> list[Event]:
        due = []
        for target in list(self.heaps):
            heap = self.heaps[target]
            while heap and heap[0].step <= step:
                due.append(heapq.heappop(heap))
            if not heap:
                del self.heaps[target]
        return sorted(due)


class SortedQueue(Queue):
    def __init__(self, name: str, post: np.ndarray, capacity: int, strict: bool) -> None:
        super().__init__(name, post, capacity, strict)
        self.arrays: dict[int, list[Event]] = {}

    def push(self, event: Event) -> None:
        array = self.arrays.setdefault(int(self.post[event.synapse]), [])
        if len(array) >= self.capacity:
            if event >= array[-1]:
                self._drop(event)
                return
            self._drop(array.pop())  # keep the earliest: the latest queued event goes
        bisect.insort(array, event)

    def pop_due(self, step: int) -> list[Event]:
        due = []
        for target in list(self.arrays):
            array = self.arrays[target]
            n = 0
            while n < len(array) and array[n].step <= step:
                n += 1
            due.extend(array[:n])
            del array[:n]
            if not array:
                del self.arrays[target]
        return sorted(due)


def make_queue(kind: str, name: str, post: np.ndarray, capacity: int, strict: bool, summing: bool) -> Queue:
    if kind == "ring":
        return RingQueue(name, post, capacity, strict, summing)
    return {"fifo": FifoQueue, "heap": HeapQueue, "sorted": SortedQueue}[kind](name, post, capacity, strict)
