"""Migration policy `{{name}}`: the reference decisions of the two-phase commit — start and
admit while under the node's limits, commit exactly when the target admitted, resend every
100 ms and give up only while nothing can have been committed, presumed abort of what is
undecided on a view change. Change a method to decide otherwise; the node overrules any
answer that would lose or duplicate an entity (and counts it as a fault). Migration decisions
cannot decline: any exception is a bug, reported as a fault with its type, message and line.
"""

from typing import List

from wit_world import exports
from wit_world.exports import migration as facts
from wit_world.exports.migration import (
    Admission,
    Admission_Admit,
    Admission_Refuse,
    Load,
    Outcome,
    PendingAction,
    Phase,
    Refusal,
    Role,
    Status,
    TimeoutAction,
    TimeoutAction_Abort,
    TimeoutAction_Retry,
    TimeoutAction_Wait,
)
from wit_world.imports import types

from luciole_policy import policy


def abort_allowed(role: Role, phase: Phase) -> bool:
    """Where giving up is safe: nothing can have been committed yet."""
    if phase in (Phase.ABORTING, Phase.ABORTED):
        return True
    if role == Role.SOURCE:
        return phase in (Phase.REQUESTED, Phase.PREPARING)
    return phase == Phase.PREPARING


@policy
class Migration(exports.Migration):
    def describe(self) -> types.PolicyInfo:
        return types.PolicyInfo(name="{{name}}", version="0.1.0")

    def on_request(self, migration: facts.Migration, load: Load) -> Admission:
        """Source: start moving an entity?"""
        if load.in_flight < load.in_flight_max:
            return Admission_Admit()
        return Admission_Refuse(Refusal.TOO_BUSY)

    def on_prepare(self, migration: facts.Migration, load: Load) -> Admission:
        """Target: take the entity?"""
        if load.entities >= load.entities_max:
            return Admission_Refuse(Refusal.OVER_CAPACITY)
        if load.in_flight >= load.in_flight_max:
            return Admission_Refuse(Refusal.TOO_BUSY)
        return Admission_Admit()

    def on_vote(self, status: Status, vote: Admission) -> Outcome:
        """Source: the target voted; commit or abort?"""
        return Outcome.COMMIT if isinstance(vote, Admission_Admit) else Outcome.ABORT

    def on_timeout(self, status: Status) -> TimeoutAction:
        """A phase's timer fired: send again, wait, or give up?"""
        if status.phase in (Phase.COMMITTED, Phase.ABORTED):
            return TimeoutAction_Wait(1000)
        exhausted = status.attempt >= 3 or status.elapsed_ms >= 300
        if exhausted and status.phase != Phase.ABORTING and abort_allowed(status.role, status.phase):
            return TimeoutAction_Abort()
        return TimeoutAction_Retry(100)

    def on_view_change(self, view: types.View, pending: List[Status]) -> List[PendingAction]:
        """The view changed: for each migration in progress, keep it or abort it."""
        actions = []
        for s in pending:
            undecided = s.phase in (Phase.REQUESTED, Phase.PREPARING)
            abort = undecided and abort_allowed(s.role, s.phase)
            actions.append(PendingAction.ABORT if abort else PendingAction.KEEP)
        return actions
