"""A producer that hands everything to a real one: the base of tests' producers that watch
or disturb what a service publishes (record it, fail after a few, stop or act at the first)."""

from __future__ import annotations

from collections.abc import Sequence

from shared.bus.base import Delivery, Message, Producer, TopicSpec


class DelegatingProducer:
    """Delegates every call to ``inner`` (the in-process bus's producer, or Kafka's).

    A subclass overrides :meth:`publish` and calls ``super().publish`` for what it lets
    through, so the records still reach the real bus."""

    def __init__(self, inner: Producer) -> None:
        self.inner = inner

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    async def publish(
        self, topic: str, messages: Sequence[Message], *, timeout_s: float | None = None
    ) -> list[Delivery]:
        return await self.inner.publish(topic, messages, timeout_s=timeout_s)

    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        await self.inner.ensure_topics(specs)

    async def ping(self) -> bool:
        return await self.inner.ping()
