"""Coordinator `lowest-id` in Python: the member with the lowest id.

The contract (wit/since_v0.1.0) gives the view's members sorted ascending by id, two u64
numbers per member in `view.ids` (high half, then low half), so the lowest is the first.
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types


class Coordinator(exports.Coordinator):
    def describe(self) -> types.PolicyInfo:
        return types.PolicyInfo(name="py-lowest-id", version="0.1.0")

    def choose(self, view: types.View, current: int) -> types.Uid:
        if len(view.ids) < 2:
            # A declined call: the host answers with its fallback policy.
            raise Err(types.PolicyError(message="empty view"))
        return types.Uid(hi=view.ids[0], lo=view.ids[1])
