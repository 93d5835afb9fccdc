"""Placement `rendezvous` in Python: every bubble goes to the member with the highest
pseudo-random weight for that (member, bubble) pair; ties go to the lower id.

The same integer arithmetic as the Rust reference, masked to 64 bits, so every node — whatever
language its policy is in — places every bubble on the same member.
"""

from typing import List

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types

M64 = (1 << 64) - 1


def mix(z: int) -> int:
    """The splitmix64 finaliser."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


class Placement(exports.Placement):
    def describe(self) -> types.PolicyInfo:
        return types.PolicyInfo(name="py-rendezvous", version="0.1.0")

    def place(self, view: types.View, bubbles: types.Bubbles) -> List[int]:
        """One member index per bubble. Members with capacity zero host nothing, unless all do."""
        capacity = view.capacity
        ids = view.ids
        all_zero = all(c == 0 for c in capacity)
        keys = []
        index = []
        for i, c in enumerate(capacity):
            if all_zero or c > 0:
                keys.append(mix(ids[2 * i] ^ mix(ids[2 * i + 1])))
                index.append(i)
        if not keys:
            raise Err(types.PolicyError(message="no members"))
        out = []
        for bubble in bubbles.id:
            salt = (bubble * 0x9E3779B97F4A7C15) & M64
            best = 0
            best_weight = mix(keys[0] ^ salt)
            # Members are in ascending id order, so `>` keeps the lower id on ties.
            for i in range(1, len(keys)):
                w = mix(keys[i] ^ salt)
                if w > best_weight:
                    best_weight = w
                    best = i
            out.append(index[best])
        return out
