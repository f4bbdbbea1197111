"""One node's part in a cluster: keeping checkpoints of its sessions, taking sessions over from
other nodes, and handing its own over (§14 across nodes).

The manager stays the owner of the live sessions; this module only moves state between a session
and the shared store (:class:`~vocalis.session.shared.SharedState`):

* **Keeping.** Each owned session has a checkpoint task in its own task group. It writes when
  the resumable state changed (a turn or tool event; checked every :data:`POLL_SECONDS` by a
  cheap signature, so no part of the engine has to report to it) and otherwise refreshes it every
  third of the grace window. The key expires a grace window (plus one refresh) after the last
  write, so the checkpoint of a node killed with ``-9`` lives as long as a resume may come. A
  detached session is written once more and then left to expire with its grace window.
* **Taking over.** A resume for a session this node does not run asks the owner to let go
  (it writes a last checkpoint, closes its socket with 1001 and drops the session), then claims
  ownership and restores from the checkpoint. A dead owner answers nothing and costs no wait.
* **Handing over.** On a release request, or when a write finds another owner (a missed
  request), the manager hands the session off and drops it without ending it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from vocalis.session import checkpoint as cp
from vocalis.session.clock import Clock
from vocalis.session.engine import Session
from vocalis.session.lifecycle import State
from vocalis.session.shared import SharedState, SharedStateUnavailable
from vocalis.settings import Settings

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25  # how soon a turn or tool event reaches the checkpoint
RELEASE_TIMEOUT_SECONDS = 3.0  # how long a resume waits for a live owner to let go
CLOSE_SERVICE_RESTART = 1012  # RFC 6455: the client should reconnect (to another node)

Signature = tuple[object, ...]


def signature(session: Session) -> Signature:
    """Changes whenever the checkpoint would: state, history, call statuses, queue, config."""
    history = session.history.entries
    return (
        session.state,
        len(history),
        tuple(c.status for e in history for c in e.calls),
        len(session.replies.queued_plans()),
        session.replies.tool_rounds,
        id(session.config),
    )


class Cluster:
    def __init__(self, shared: SharedState, settings: Settings, clock: Clock) -> None:
        self.shared = shared
        self.settings = settings
        self.clock = clock
        grace = max(settings.resume_grace_seconds, 1.0)
        self.refresh_seconds = grace / 3
        self.ttl_seconds = grace + self.refresh_seconds

    @property
    def node_id(self) -> str:
        return self.shared.node_id

    async def save(self, session: Session) -> bool:
        """Write the checkpoint now; ``False`` when another node owns the session."""
        data = cp.encode(cp.capture(session, self.node_id))
        ttl = self.ttl_seconds
        if session.state is State.DETACHED:
            ttl = self.settings.resume_grace_seconds
        return await self.shared.save_checkpoint(session.id, data, ttl)

    async def keep(self, session: Session, lost: Callable[[Session], None]) -> None:
        """The checkpoint task of one owned session (runs in the session's task group)."""
        last: Signature | None = None  # what the store holds; None: nothing written yet
        next_refresh = 0.0
        failing = False  # Redis was unreachable at the last try (logged once per outage)
        while session.state is not State.ENDED:
            now = self.clock.now()
            current = signature(session)
            changed = current != last
            due = now >= next_refresh and session.state is State.ACTIVE
            if changed or due:
                try:
                    if last is None or failing:  # first write, or the store came back
                        await self.shared.remember_resume_token(session.resume_token, session.id)
                    owned = await self.save(session)
                except SharedStateUnavailable as exc:
                    if not failing:
                        log.warning(
                            "checkpoint of %s not written (%s): the session goes on here and "
                            "is written again once the store is back",
                            session.id,
                            exc,
                        )
                    failing = True
                    await self.clock.sleep(POLL_SECONDS)
                    continue
                if failing:
                    log.info("checkpoint of %s written again", session.id)
                    failing = False
                if not owned:
                    lost(session)
                    return
                last, next_refresh = current, now + self.refresh_seconds
            await self.clock.sleep(POLL_SECONDS)

    async def take(self, session_id: str) -> cp.Checkpoint | None:
        """Become the owner of ``session_id`` and return its state (``None``: nothing to resume:
        unknown, ended, or its grace window has passed)."""
        data = await self.shared.load_checkpoint(session_id)
        if data is None:
            return None
        owner = cp.decode(data).node_id
        if owner != self.node_id:
            await self.shared.request_release(owner, session_id, RELEASE_TIMEOUT_SECONDS)
        await self.shared.claim(session_id, self.ttl_seconds)
        data = await self.shared.load_checkpoint(session_id)  # the owner's last word
        return cp.decode(data) if data is not None else None
