"""SessionDirectory contract (the in-memory adapter today; Redis joins with the storage work)."""

from __future__ import annotations

from tinyim.modules.presence import DeviceSession, SessionDirectory
from tinyim.modules.presence.adapters.memory import InMemorySessionDirectory

ADAPTERS: list[type[SessionDirectory]] = [InMemorySessionDirectory]


async def test_bind_lookup_unbind() -> None:
    for adapter in ADAPTERS:
        d = adapter()
        pc, web = DeviceSession(1, "PC", "gw-a", "c1"), DeviceSession(1, "Web", "gw-b", "c2")
        await d.bind(pc)
        await d.bind(web)
        await d.bind(DeviceSession(2, "PC", "gw-a", "c3"))
        found = await d.lookup([1, 2, 3])
        assert sorted(found[1], key=lambda s: s.device_id) == [pc, web] and 3 not in found
        await d.unbind(pc)
        assert (await d.lookup([1]))[1] == [web]


async def test_unbind_of_a_replaced_connection_keeps_the_new_one() -> None:
    for adapter in ADAPTERS:
        d = adapter()
        old, new = DeviceSession(1, "PC", "gw-a", "old"), DeviceSession(1, "PC", "gw-b", "new")
        await d.bind(old)
        await d.bind(new)
        await d.unbind(old)
        assert (await d.lookup([1]))[1] == [new]
        await d.refresh(new)
        assert (await d.lookup([1]))[1] == [new]
