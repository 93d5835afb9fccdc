"""`./test.sh` runs these with Python, on the policy itself (no component needed)."""

import unittest

from wit_world.imports import types

from app import Coordinator
from componentize_py_types import Err


def view(members):
    """A view as the node hands it: members given as (low id, capacity)."""
    return types.View(
        epoch=1,
        id=types.Uid(hi=0, lo=1),
        ids=[x for member_id, _ in members for x in (0, member_id)],
        capacity=[capacity for _, capacity in members],
        labels=[],
        joined=[],
        left=[],
        stable=True,
        seed=7,
    )


class CoordinatorTest(unittest.TestCase):
    def test_the_lowest_id_with_capacity_coordinates(self):
        chosen = Coordinator().choose(view([(1, 0), (2, 5), (3, 1)]), 0xFFFFFFFF)
        self.assertEqual(chosen, types.Uid(hi=0, lo=2))

    def test_with_no_capacity_anywhere_the_lowest_id_does(self):
        chosen = Coordinator().choose(view([(1, 0), (3, 0)]), 0xFFFFFFFF)
        self.assertEqual(chosen, types.Uid(hi=0, lo=1))

    def test_an_empty_view_is_declined(self):
        # A `Decline` reaches the node as the contract's error, with its message.
        with self.assertRaises(Err) as declined:
            Coordinator().choose(view([]), 0xFFFFFFFF)
        self.assertEqual(declined.exception.value.message, "an empty view")


if __name__ == "__main__":
    unittest.main()
