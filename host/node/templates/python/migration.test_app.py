"""`./test.sh` runs these with Python, on the policy itself (no component needed)."""

import unittest

from wit_world.exports.migration import (
    Admission_Admit,
    Admission_Refuse,
    Load,
    Migration as Facts,
    Outcome,
    Phase,
    Refusal,
    Role,
    Status,
    TimeoutAction_Abort,
)
from wit_world.imports import types

from app import Migration


def status(role, phase, attempt):
    one = types.Uid(hi=0, lo=1)
    facts = Facts(
        id=one,
        entity=one,
        source=one,
        target=types.Uid(hi=0, lo=2),
        source_bubble=0,
        target_bubble=1,
        epoch=1,
    )
    return Status(migration=facts, role=role, phase=phase, attempt=attempt, elapsed_ms=0)


class MigrationTest(unittest.TestCase):
    def test_a_decided_commit_is_never_given_up(self):
        action = Migration().on_timeout(status(Role.SOURCE, Phase.COMMITTING, 50))
        self.assertNotIsInstance(action, TimeoutAction_Abort)

    def test_an_admitted_vote_commits(self):
        outcome = Migration().on_vote(status(Role.SOURCE, Phase.PREPARING, 1), Admission_Admit())
        self.assertEqual(outcome, Outcome.COMMIT)

    def test_a_full_node_refuses_to_take_an_entity(self):
        load = Load(entities=10, entities_max=10, in_flight=0, in_flight_max=8)
        facts = status(Role.TARGET, Phase.PREPARING, 1).migration
        self.assertEqual(Migration().on_prepare(facts, load), Admission_Refuse(Refusal.OVER_CAPACITY))


if __name__ == "__main__":
    unittest.main()
