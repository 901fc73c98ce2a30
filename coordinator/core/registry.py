"""The registry of agents: who is connected, what they can do, and which
agents can serve a routing class (task kind + required labels)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from coordinator.core.model import AgentRecord, AgentState, Registration

# A routing class: tasks with the same kind and required labels are
# interchangeable for eligibility, so eligibility is computed once per class.
RouteKey = tuple[str, tuple[tuple[str, int], ...]]


def serves(agent: AgentRecord, key: RouteKey) -> bool:
    kind, required = key
    if agent.kinds and kind not in agent.kinds:
        return False
    labels = agent.labels
    for name, level in required:
        have = labels.get(name)
        if have is None or have < level:
            return False
    return True


class Registry:
    def __init__(self, remember_gone: int = 1000) -> None:
        self._agents: dict[str, AgentRecord] = {}
        # The live agents, the one heard from longest ago first: the lease check
        # reads only the silent ones instead of the whole fleet every tick.
        self._by_silence: OrderedDict[str, AgentRecord] = OrderedDict()
        self._gone: OrderedDict[str, AgentRecord] = OrderedDict()
        self._remember_gone = remember_gone
        self._eligible: dict[RouteKey, list[AgentRecord]] = {}
        self._next_session = 0

    # -- membership -------------------------------------------------------

    def add(self, reg: Registration, now: float) -> AgentRecord:
        """Register a new session for reg.agent_id; the caller has already
        removed any previous live session of the same agent."""
        self._next_session += 1
        agent = AgentRecord(
            agent_id=reg.agent_id,
            labels=dict(reg.labels),
            kinds=reg.kinds,
            capacity=reg.capacity,
            version=reg.version,
            session=self._next_session,
            connected_at=now,
            last_seen=now,
            peer=reg.peer,
            credits=reg.credits,
            allowed=reg.capacity,
        )
        old = self._gone.pop(reg.agent_id, None)
        if old is not None:
            agent.completed, agent.failed = old.completed, old.failed
        self._agents[reg.agent_id] = agent
        self._by_silence.pop(reg.agent_id, None)
        self._by_silence[reg.agent_id] = agent
        self._eligible.clear()
        return agent

    def remove(self, agent: AgentRecord, now: float) -> None:
        agent.state = AgentState.GONE
        agent.left_at = now
        agent.credits = 0
        if self._agents.get(agent.agent_id) is agent:
            del self._agents[agent.agent_id]
            del self._by_silence[agent.agent_id]
        self._gone[agent.agent_id] = agent
        self._gone.move_to_end(agent.agent_id)
        while len(self._gone) > self._remember_gone:
            self._gone.popitem(last=False)
        self._eligible.clear()

    def set_state(self, agent: AgentRecord, state: AgentState) -> None:
        if agent.state != state:
            agent.state = state
            self._eligible.clear()

    def heard(self, agent: AgentRecord, now: float) -> None:
        """A frame arrived from the agent (a live one) at `now`."""
        agent.last_seen = now
        self._by_silence.move_to_end(agent.agent_id)

    def silent_since(self, cutoff: float) -> list[AgentRecord]:
        """The live agents not heard from since `cutoff`. Reads them and the
        first agent heard from since, not the fleet (were the wall clock to step
        back, an agent behind a later one would wait for a following call)."""
        silent = []
        for agent in self._by_silence.values():
            if agent.last_seen >= cutoff:
                break
            silent.append(agent)
        return silent

    # -- lookups ----------------------------------------------------------

    def get(self, agent_id: str) -> AgentRecord | None:
        return self._agents.get(agent_id)

    def live(self) -> list[AgentRecord]:
        return list(self._agents.values())

    def records(self) -> Iterable[AgentRecord]:
        """The live agents without a copy: for readers that do not add or remove agents."""
        return self._agents.values()

    def gone(self) -> list[AgentRecord]:
        return list(self._gone.values())

    def session_of(self, agent_id: str, session: int) -> AgentRecord | None:
        agent = self._agents.get(agent_id)
        return agent if agent is not None and agent.session == session else None

    def eligible(self, key: RouteKey) -> list[AgentRecord]:
        """Ready agents that can serve the routing class (cached until membership changes)."""
        found = self._eligible.get(key)
        if found is None:
            found = [a for a in self._agents.values() if a.state == AgentState.READY and serves(a, key)]
            self._eligible[key] = found
        return found

    def why_unroutable(self, key: RouteKey) -> str:
        """A person-readable reason why no ready agent serves the class."""
        kind, required = key
        ready = [a for a in self._agents.values() if a.state == AgentState.READY]
        if not ready:
            return "no agent is connected and ready"
        by_kind = [a for a in ready if not a.kinds or kind in a.kinds]
        if not by_kind:
            return f"no ready agent handles kind {kind!r}"
        for name, level in required:
            with_label = [a for a in by_kind if name in a.labels]
            if not with_label:
                return f"no ready agent handling {kind!r} has label {name!r}"
            if all(a.labels[name] < level for a in with_label):
                best = max(a.labels[name] for a in with_label)
                return f"no ready agent has label {name!r} at level >= {level} (best is {best})"
        return "no ready agent meets all required labels together"
