"""AgentSessions: the agents' open streams, where the core's decisions take effect.

The core decides who runs what, which attempts are cancelled, who drains and
whose stream is fenced off; it holds no sockets, so each decision lands here as
frames queued on the streams of the agents concerned. The table of streams and
the core's registry change together: an agent registers and its stream joins
in the same step, and a stream that ends is disconnected in the core before
anything else can run.
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

from coordinator.core.mesh import MeshCore
from coordinator.service.agent_session import AgentSession

log = logging.getLogger(__name__)


class AgentSessions:
    def __init__(self, core: MeshCore) -> None:
        self._core = core
        self._by_agent: dict[str, AgentSession] = {}
        self._dispatch_soon: asyncio.Handle | None = None
        # A coordinator shutting down assigns nothing more, and leaves the leases of the
        # streams it ends in place for its next run (see shutdown.py).
        self._holding = False
        self._leaving = False

    # -- the table ------------------------------------------------------------

    def joined(self, sess: AgentSession) -> None:
        """The stream of an agent the core has just registered."""
        self._by_agent[sess.agent_id] = sess

    def ended(self, sess: AgentSession) -> None:
        """The stream is gone: its leases are revoked, and its work goes to others."""
        if self._by_agent.get(sess.agent_id) is sess:
            del self._by_agent[sess.agent_id]
        if self._leaving:
            # One line for all of them is the shutdown's (leave); a fleet's worth here would bury it.
            log.debug("agent %s session %d ended by the shutdown, its leases kept", sess.agent_id, sess.session)
            return
        self._core.disconnect(sess.agent_id, sess.session, time.time())
        log.info("agent %s session %d ended", sess.agent_id, sess.session)
        self.schedule_dispatch()

    def open(self) -> list[AgentSession]:
        """Every open stream, one per connected agent."""
        return list(self._by_agent.values())

    # -- dispatch ---------------------------------------------------------------

    def schedule_dispatch(self) -> None:
        """Run one dispatch pass soon; many triggers in one loop turn share it."""
        if self._dispatch_soon is None:
            self._dispatch_soon = asyncio.get_running_loop().call_soon(self._dispatch)

    def dispatch_now(self) -> None:
        """Run the scheduled dispatch pass at once, if there is one.

        For a reply that is about to be queued (a submission's ack): the
        assignments' writes then start before the reply's, instead of waiting
        for it to be written (about 0.1 ms of the loop for one small message).
        A fault in the pass is logged, as the loop would have logged it: the
        submission was accepted, and its caller must still be told so.
        """
        if self._dispatch_soon is not None:
            self._dispatch_soon.cancel()
            try:
                self._dispatch()
            except Exception:
                log.exception("dispatch pass failed")

    def hold(self) -> None:
        """Assign nothing from now on (the coordinator is stopping)."""
        self._holding = True

    def _dispatch(self) -> None:
        self._dispatch_soon = None
        if self._holding:
            return
        now = time.time()
        for agent_id, recs in self._core.dispatch(now).items():
            sess = self._by_agent.get(agent_id)
            if sess is None:  # cannot happen: registry and sessions change together
                log.error("assigned %d tasks to agent %s without a session", len(recs), agent_id)
                continue
            sess.send_assignments(recs, now)

    # -- other decisions ----------------------------------------------------------

    def flush_cancels(self) -> None:
        for agent_id, refs in self._core.take_cancels().items():
            sess = self._by_agent.get(agent_id)
            if sess is not None:
                sess.send_cancels(refs)

    def send_drain(self, agent_id: str) -> None:
        sess = self._by_agent.get(agent_id)
        if sess is not None:
            sess.send_drain()

    def close(self, agent_id: str, session: int, code: grpc.StatusCode, message: str) -> None:
        """End this session of the agent's (not a newer one) with a status."""
        sess = self._by_agent.get(agent_id)
        if sess is not None and sess.session == session:
            del self._by_agent[agent_id]
            sess.close(code, message)

    def leave(self, code: grpc.StatusCode, message: str) -> None:
        """End every stream with a status, its agent's leases left as they are: the coordinator
        is stopping, and its next run holds them for the agent's return."""
        self._leaving = True
        streams = list(self._by_agent.values())
        for sess in streams:
            self.close(sess.agent_id, sess.session, code, message)
        running = sum(len(a.in_flight) for a in self._core.registry.records())
        log.info("ending %d agent stream(s); the %d task(s) they still run stay assigned to their agents "
                 "for the next run", len(streams), running)
