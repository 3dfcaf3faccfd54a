"""The outbox relay: notices committed with their social change go on to the timeline (the Notices port).

Delivery is at-least-once: a notice leaves the outbox only after the timeline took it, so a crash in
between delivers it again, and the timeline writes it once (its key is the message's client_msg_id).
Right after a commit the service hands that unit of work's notices to `deliver`; what a crash or a failed
delivery left behind is found by the background `run`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from tinyim.modules.relation.domain import PendingNotice
from tinyim.modules.relation.ports import NoticeOutbox, Notices

log = logging.getLogger(__name__)

DRAIN_BATCH = 100
RELAY_EVERY_SECONDS = 5.0


class OutboxRelay:
    def __init__(self, outbox: NoticeOutbox, notices: Notices, batch: int = DRAIN_BATCH) -> None:
        self._outbox = outbox
        self._notices = notices
        self._batch = batch

    async def deliver(self, notices: Sequence[PendingNotice]) -> int:
        """Post these notices in order, each removed from the outbox once posted; stops at the first that
        cannot be posted or removed (it and those after it stay for a later run, so their order is kept;
        one posted but not removed is posted again, and the timeline writes it once). Never raises: the
        change is committed either way. How many left the outbox."""
        done = 0
        for pending in notices:
            try:
                await self._post(pending)
                await self._outbox.remove(pending.key)
            except Exception:
                log.warning("notice %s not delivered; it stays in the outbox", pending.key, exc_info=True)
                return done
            done += 1
        return done

    async def drain(self) -> int:
        """Deliver everything in the outbox now (oldest first); how many were delivered."""
        total = 0
        while True:
            batch = await self._outbox.pending(self._batch)
            done = await self.deliver(batch)
            total += done
            if done < len(batch) or len(batch) < self._batch:
                return total

    async def run(self, every_seconds: float = RELAY_EVERY_SECONDS) -> None:
        """Forever: every few seconds deliver the notices that were pending on the previous pass too.
        A notice committed a moment ago is left to the service's own prompt delivery (a delivery twice
        would be harmless, only wasted); one still there a pass later was left behind."""
        seen: set[str] = set()
        while True:
            await asyncio.sleep(every_seconds)
            try:
                batch = await self._outbox.pending(self._batch)
                await self.deliver([n for n in batch if n.key in seen])
                seen = {n.key for n in batch}
            except Exception:  # the database is away: try again on the next pass
                log.warning("outbox relay pass failed", exc_info=True)

    async def _post(self, n: PendingNotice) -> None:
        if n.group_id:
            await self._notices.to_group(n.sender_id, n.group_id, list(n.receiver_ids), n.content, n.key)
        else:
            await self._notices.to_user(n.sender_id, n.receiver_ids[0], n.content, n.friend_request, n.key)
