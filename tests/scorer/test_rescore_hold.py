"""Re-scoring holds while the consumer drains a backlog: until it has caught up, at most
``max_hold_s``, and never past ``stop``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from services.scorer.rescorer import Rescorer
from shared.clock import FixedClock
from shared.config import TendConfig

pytestmark = pytest.mark.unit


def rescorer(busy: Any, max_hold_s: float = 60.0) -> Rescorer:
    # hold() touches neither the database nor the producer.
    return Rescorer(
        None,  # type: ignore[arg-type]
        None,
        TendConfig(),
        FixedClock(datetime(2026, 12, 1, tzinfo=UTC)),
        busy=busy,
        max_hold_s=max_hold_s,
    )


class TestHold:
    async def test_holds_until_the_consumer_caught_up(self) -> None:
        answers = iter([True, True, True])
        asked: list[bool] = []

        def busy() -> bool:
            asked.append(answer := next(answers, False))
            return answer

        await asyncio.wait_for(rescorer(busy).hold(asyncio.Event()), 30)
        assert asked == [True, True, True, False]

    async def test_not_busy_does_not_hold(self) -> None:
        asked: list[int] = []

        def busy() -> bool:
            asked.append(1)
            return False

        await rescorer(busy).hold(asyncio.Event())
        assert asked == [1]

    async def test_gives_up_after_max_hold(self) -> None:
        await asyncio.wait_for(rescorer(lambda: True, max_hold_s=0.3).hold(asyncio.Event()), 30)

    async def test_stop_ends_the_hold(self) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(rescorer(lambda: True).hold(stop))
        await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(task, 30)
