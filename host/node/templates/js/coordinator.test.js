// `npm test` runs this with Node, on the policy itself (no component needed).
import { test } from "node:test";
import assert from "node:assert/strict";
import { coordinator } from "../policy.js";
import { Decline } from "../luciole-policy.js";

// A view as the node hands it: members (low ids here) with their capacities.
function view(members) {
  return {
    epoch: 1n,
    id: { hi: 0n, lo: 1n },
    ids: BigUint64Array.from(members.flatMap(([id]) => [0n, BigInt(id)])),
    capacity: Uint32Array.from(members.map(([, capacity]) => capacity)),
    labels: [],
    joined: new Uint32Array(0),
    left: [],
    stable: true,
    seed: 7n,
  };
}

test("the lowest id with capacity coordinates", () => {
  const v = view([[1, 0], [2, 5], [3, 1]]);
  assert.deepEqual(coordinator.choose(v, 0xffffffff), { hi: 0n, lo: 2n });
});

test("with no capacity anywhere the lowest id does", () => {
  const v = view([[1, 0], [3, 0]]);
  assert.deepEqual(coordinator.choose(v, 0xffffffff), { hi: 0n, lo: 1n });
});

test("an empty view is declined", () => {
  assert.throws(() => coordinator.choose(view([]), 0xffffffff), Decline);
});
