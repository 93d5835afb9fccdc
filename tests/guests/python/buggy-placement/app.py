"""A placement with two deliberate bugs, for the tests of `luciole policy test` and of the
Python helper (guest-sdk/python): an AttributeError in views of epoch 999, and a member index
past the end in views of more than 500 members. Otherwise bubbles dealt in turn."""

from typing import List

from wit_world import exports
from wit_world.imports import types

from luciole_policy import policy


@policy
class Placement(exports.Placement):
    def describe(self) -> types.PolicyInfo:
        return types.PolicyInfo(name="buggy-placement", version="0.1.0")

    def place(self, view: types.View, bubbles: types.Bubbles) -> List[int]:
        members = len(view.capacity)
        if view.epoch == 999:
            return [view.leader for _ in bubbles.id]  # the AttributeError
        if members > 500:
            return [members for _ in bubbles.id]  # no such member
        hosts = [i for i in range(members) if view.capacity[i] > 0] or list(range(members))
        return [hosts[b % len(hosts)] for b in bubbles.id]
