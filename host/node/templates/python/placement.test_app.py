"""`./test.sh` runs these with Python, on the policy itself (no component needed)."""

import unittest

from wit_world.imports import types

from app import Placement
from componentize_py_types import Err


def view(capacities):
    """A view as the node hands it: members 1, 2, … with these capacities."""
    return types.View(
        epoch=1,
        id=types.Uid(hi=0, lo=1),
        ids=[x for i in range(len(capacities)) for x in (0, i + 1)],
        capacity=list(capacities),
        labels=[],
        joined=[],
        left=[],
        stable=True,
        seed=7,
    )


def bubbles(n):
    return types.Bubbles(
        id=list(range(n)), entity_count=[0] * n, load=[0] * n, bounds=[], current=[]
    )


class PlacementTest(unittest.TestCase):
    def test_every_bubble_goes_to_a_member_with_capacity_in_turn(self):
        self.assertEqual(Placement().place(view([1, 0, 2]), bubbles(4)), [0, 2, 0, 2])

    def test_an_empty_view_is_declined(self):
        # A `Decline` reaches the node as the contract's error, with its message.
        with self.assertRaises(Err) as declined:
            Placement().place(view([]), bubbles(1))
        self.assertEqual(declined.exception.value.message, "an empty view")


if __name__ == "__main__":
    unittest.main()
