"""Batches per key: concurrent items run together, one batch at a time, outcomes kept apart."""

from __future__ import annotations

import asyncio

import pytest

from kavach.server.batching import KeyedBatches
from kavach.server.errors import ServiceUnavailable


class Recorder:
    """A batch runner that records each batch and doubles its items (odd ones are refused)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.running = 0
        self.most_at_once = 0

    async def run(self, items: list[int]) -> list[int | Exception]:
        self.batches.append(items)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        await asyncio.sleep(0.01)
        self.running -= 1
        return [ValueError(f"odd {i}") if i % 2 else i * 2 for i in items]


async def test_items_that_arrive_while_a_batch_runs_run_together() -> None:
    batches: KeyedBatches[int, int] = KeyedBatches(max_batch=16)
    recorder = Recorder()
    first = asyncio.create_task(batches.submit("env", 0, recorder.run))
    await asyncio.sleep(0.002)  # the first batch is running
    later = [asyncio.create_task(batches.submit("env", i, recorder.run)) for i in (2, 4, 6)]
    assert await asyncio.gather(first, *later) == [0, 4, 8, 12]
    assert recorder.batches == [[0], [2, 4, 6]]
    assert recorder.most_at_once == 1


async def test_a_refusal_is_its_items_alone_and_batches_are_capped() -> None:
    batches: KeyedBatches[int, int] = KeyedBatches(max_batch=2)
    recorder = Recorder()
    results = await asyncio.gather(
        *(batches.submit("env", i, recorder.run) for i in range(5)), return_exceptions=True
    )
    assert [r if isinstance(r, int) else str(r) for r in results] == [0, "odd 1", 4, "odd 3", 8]
    assert recorder.batches == [[0, 1], [2, 3], [4]]


async def test_keys_run_apart_and_are_forgotten_once_drained() -> None:
    batches: KeyedBatches[int, int] = KeyedBatches(max_batch=16)
    recorder = Recorder()
    await asyncio.gather(*(batches.submit(key, 2, recorder.run) for key in ("a", "b", "c")))
    assert recorder.most_at_once == 3
    assert batches._pending == {}


async def test_a_failing_run_fails_each_item_with_its_own_error() -> None:
    batches: KeyedBatches[int, int] = KeyedBatches(max_batch=16)

    async def broken(items: list[int]) -> list[int | Exception]:
        raise RuntimeError("a bug")

    results = await asyncio.gather(
        *(batches.submit("env", i, broken) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, ServiceUnavailable) for r in results)
    assert len({id(r) for r in results}) == 3
    with pytest.raises(ServiceUnavailable):
        await batches.submit("env", 1, broken)
