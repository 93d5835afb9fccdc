"""Placement policy `{{name}}`: bubbles dealt in turn to the members with capacity (to every
member if none has). Change `place` to decide otherwise: it returns, for each bubble, the
index of its member in the view. `raise Decline("why")` to decline (the node's fallback then
answers). Any other exception is a bug, reported as a fault with its type, message and line.

How the contract's types look here: integers are `int`, lists `list`, records dataclasses.
Member i has id (view.ids[2*i], view.ids[2*i + 1]) and capacity view.capacity[i]; members are
sorted by id. Bubbles come as columns: bubble b has id bubbles.id[b], bubbles.entity_count[b],
bubbles.load[b], and bubbles.current[b] (its member's index now, or 0xffffffff) when given.
"""

from typing import List

from wit_world import exports
from wit_world.imports import types

from luciole_policy import Decline, policy


@policy
class Placement(exports.Placement):
    def describe(self) -> types.PolicyInfo:
        return types.PolicyInfo(name="{{name}}", version="0.1.0")

    def place(self, view: types.View, bubbles: types.Bubbles) -> List[int]:
        members = len(view.capacity)
        hosts = [i for i in range(members) if view.capacity[i] > 0] or list(range(members))
        if not hosts:
            raise Decline("an empty view")
        return [hosts[bubble % len(hosts)] for bubble in bubbles.id]
