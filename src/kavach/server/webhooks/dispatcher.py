"""The webhook dispatcher: a background task that queues and sends deliveries.

Each round, it turns new audit events into delivery rows (`fanout`), then takes the due
deliveries, sends each once and records how it went. A delivery is a row from the moment
its event is read, so a restart loses none: a claim lasts an attempt's timeout and a
margin, and one interrupted is taken again once it lapses. A failed attempt is retried
after the next of `webhook_retry_delays_seconds`; after the last, the delivery has failed.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kavach.server.db.base import utcnow
from kavach.server.logging import get_logger
from kavach.server.providers.egress import Egress
from kavach.server.settings import Settings
from kavach.server.webhooks.fanout import fan_out_all
from kavach.server.webhooks.models import DELIVERED, FAILED, PENDING, Webhook, WebhookDelivery
from kavach.server.webhooks.sender import MAX_ERROR_CHARS, Claimed, Outcome, attempt

log = get_logger(__name__)
CLAIM_BATCH = 20  # deliveries sent at once
CLAIM_MARGIN = timedelta(seconds=30)  # beyond the timeout, before a claim lapses
STOP_GRACE_SECONDS = 2.0  # how long a stop waits for attempts under way


async def claim_due(
    sessions: async_sessionmaker[AsyncSession], lease: timedelta, limit: int = CLAIM_BATCH
) -> list[Claimed]:
    """Take the due deliveries for one attempt each (PostgreSQL: rows others hold are skipped)."""
    now = utcnow()
    async with sessions() as session, session.begin():
        rows = (
            await session.execute(
                select(WebhookDelivery, Webhook.sealed_target)
                .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                .where(WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now)
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True, of=WebhookDelivery)
            )
        ).all()
        claimed = []
        for delivery, sealed in rows:
            delivery.attempts += 1
            delivery.last_attempt_at = now
            delivery.next_attempt_at = now + lease
            claimed.append(
                Claimed(
                    delivery.id, delivery.webhook_id, delivery.event_type, delivery.body, sealed
                )
            )
    return claimed


async def record(
    sessions: async_sessionmaker[AsyncSession],
    claimed: Claimed,
    outcome: Outcome,
    delays: tuple[float, ...],
) -> str | None:
    """Record an attempt: delivered, due again after the next delay, or failed for good."""
    now = utcnow()
    async with sessions() as session, session.begin():
        delivery = await session.get(WebhookDelivery, claimed.id, with_for_update=True)
        if delivery is None or delivery.status != PENDING:  # its webhook was deleted meanwhile
            return None
        delivery.response_code = outcome.response_code
        delivery.last_error = None if outcome.error is None else outcome.error[:MAX_ERROR_CHARS]
        if outcome.delivered:
            delivery.status, delivery.delivered_at, delivery.next_attempt_at = DELIVERED, now, None
        elif delivery.attempts > len(delays):
            delivery.status, delivery.next_attempt_at = FAILED, None
        else:
            delivery.next_attempt_at = now + timedelta(seconds=delays[delivery.attempts - 1])
        return delivery.status


class WebhookDispatcher:
    """Run the rounds in the background, every poll interval, until stopped."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        read_sessions: async_sessionmaker[AsyncSession],
        key: bytes,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._read_sessions = read_sessions
        self._key = key  # unseals each webhook's URL and signing secret
        self._lease = timedelta(seconds=settings.webhook_timeout_seconds) + CLAIM_MARGIN
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    def start(self) -> None:
        """Start the rounds (the first at once: deliveries due while stopped go out now)."""
        if self._task is None:
            self._client = httpx.AsyncClient(
                timeout=self._settings.webhook_timeout_seconds, follow_redirects=False
            )
            self._task = asyncio.create_task(self._run(), name="webhook-dispatcher")

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.round()
            except Exception as error:  # the next round tries again; the rows wait for it
                log.warning("webhook_round_failed", error=type(error).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._stopping.wait(), self._settings.webhook_poll_interval_seconds
                )

    async def round(self) -> None:
        """Queue the deliveries of new events, then send what is due."""
        await fan_out_all(self._sessions, self._read_sessions)
        while not self._stopping.is_set():
            claimed = await claim_due(self._sessions, self._lease)
            if not claimed:
                return
            await asyncio.gather(*(self._deliver(one) for one in claimed))
            if len(claimed) < CLAIM_BATCH:
                return

    async def _deliver(self, claimed: Claimed) -> None:
        assert self._client is not None  # noqa: S101 - started
        egress = Egress.of(self._settings)  # as each request does: the setting may change
        # httpx times each read and write, not the whole attempt: a receiver trickling its
        # answer would hold the round (and outlive the claim) without this bound.
        try:
            async with asyncio.timeout(self._settings.webhook_timeout_seconds):
                outcome = await attempt(self._client, egress, self._key, claimed)
        except TimeoutError:
            outcome = Outcome(error="the receiver did not answer in time")
        delays = self._settings.webhook_retry_delays_seconds
        status = await record(self._sessions, claimed, outcome, delays)
        log.info(
            "webhook_delivery",
            delivery_id=str(claimed.id),
            webhook_id=str(claimed.webhook_id),
            event_type=claimed.event_type,
            response_code=outcome.response_code,
            status=status,
        )

    async def close(self) -> None:
        """Stop after the attempts under way (briefly; a claim cut short is taken again)."""
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), STOP_GRACE_SECONDS)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self._client is not None:
            await self._client.aclose()
