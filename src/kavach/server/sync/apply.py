"""Carry out a sync plan against a provider: bounded concurrency, retries with backoff."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import tenacity

from kavach.server.errors import ProviderError
from kavach.server.providers.base import SyncProvider
from kavach.server.settings import Settings
from kavach.server.sync.plan import CREATE, DELETE, UPDATE, PlanItem

WRITES = (CREATE, UPDATE, DELETE)


@dataclass
class Outcome:
    """What happened to one planned item."""

    item: PlanItem
    ok: bool
    attempts: int
    error: str | None = None


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ProviderError) and exc.retryable


class _Backoff(tenacity.wait.wait_base):
    """Wait what the target asked for (Retry-After, capped), else back off exponentially."""

    def __init__(self, cap: float) -> None:
        self.cap = cap
        self.fallback = tenacity.wait_exponential_jitter(multiplier=0.2, max=5)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, ProviderError) and error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.cap)
        return float(self.fallback(retry_state))


def retrying(settings: Settings) -> tenacity.AsyncRetrying:
    """Retry retryable provider errors, waiting as the target asks, a bounded number of times."""
    return tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception(_retryable),
        stop=tenacity.stop_after_attempt(settings.sync_max_attempts),
        wait=_Backoff(settings.sync_max_retry_after_seconds),
        reraise=True,
    )


async def _call(
    provider: SyncProvider, item: PlanItem, settings: Settings
) -> tuple[int, ProviderError | None]:
    """Run one write with retries; return (attempts, the final error or None)."""
    attempts = 0

    async def once() -> None:
        nonlocal attempts
        attempts += 1
        try:
            async with asyncio.timeout(settings.sync_call_timeout_seconds):
                if item.action == DELETE:
                    await provider.delete(item.remote_name)
                else:
                    assert item.value is not None  # noqa: S101 - writes always carry a value
                    await provider.put(item.remote_name, item.value)
        except TimeoutError:
            raise ProviderError("the target did not answer in time", retryable=True) from None

    try:
        await retrying(settings)(once)
    except ProviderError as error:
        return attempts, error
    return attempts, None


async def apply(
    provider: SyncProvider,
    items: list[PlanItem],
    settings: Settings,
    on_done: Callable[[Outcome], Awaitable[None]],
) -> list[Outcome]:
    """Apply every write in the plan; report each outcome as it lands (never swallowed)."""
    gate = asyncio.Semaphore(provider.max_concurrency)
    record = asyncio.Lock()  # on_done writes to the database one at a time

    async def one(item: PlanItem) -> Outcome:
        async with gate:
            attempts, error = await _call(provider, item, settings)
        outcome = Outcome(item, error is None, attempts, error.message if error else None)
        async with record:
            await on_done(outcome)
        return outcome

    return list(await asyncio.gather(*(one(item) for item in items if item.action in WRITES)))
