from __future__ import annotations

import asyncio

from ingest.engine import ByteBudget


class TestByteBudget:
    def test_waits_for_room_and_lets_a_huge_object_through_alone(self) -> None:
        """Acquisitions beyond the limit wait for releases; one larger than the limit goes alone."""
        order: list[str] = []

        async def go() -> None:
            budget = ByteBudget(100)
            await budget.acquire("a", 60)

            async def later(key: str, size: int) -> None:
                await budget.acquire(key, size)
                order.append(key)

            t1 = asyncio.create_task(later("b", 60))
            await asyncio.sleep(0.01)
            assert [] == order
            assert 60 == budget.used
            budget.release("a")
            await asyncio.sleep(0.01)
            assert ["b"] == order
            t2 = asyncio.create_task(later("huge", 10_000))
            await asyncio.sleep(0.01)
            assert ["b"] == order
            budget.release("b")
            await asyncio.gather(t1, t2)
            assert (["b", "huge"], 100) == (order, budget.used)

        asyncio.run(go())
