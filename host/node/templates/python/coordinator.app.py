"""Coordinator policy `{{name}}`: the member with the lowest id among those with capacity (any
member if none has). Change `choose` to decide otherwise; `raise Decline("why")` to decline
(the node's fallback then answers). Any other exception is a bug, reported as a fault with
its type, message and line.

How the contract's types look here: integers are `int`, lists `list`, records dataclasses.
Member i has id (view.ids[2*i], view.ids[2*i + 1]) (high and low 64 bits) and capacity
view.capacity[i]; members are sorted by id; view.labels lists (member, key, value) records.
`current` is the index of the previous coordinator, or 0xffffffff.
"""

from wit_world import exports
from wit_world.imports import types

from luciole_policy import Decline, policy


@policy
class Coordinator(exports.Coordinator):
    def describe(self) -> types.PolicyInfo:
        return types.PolicyInfo(name="{{name}}", version="0.1.0")

    def choose(self, view: types.View, current: int) -> types.Uid:
        members = len(view.capacity)
        if members == 0:
            raise Decline("an empty view")
        pick = next((i for i in range(members) if view.capacity[i] > 0), 0)
        return types.Uid(hi=view.ids[2 * pick], lo=view.ids[2 * pick + 1])
