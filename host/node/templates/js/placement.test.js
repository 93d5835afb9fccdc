// `npm test` runs this with Node, on the policy itself (no component needed).
import { test } from "node:test";
import assert from "node:assert/strict";
import { placement } from "../policy.js";
import { Decline } from "../luciole-policy.js";

// A view as the node hands it: members 1, 2, … with these capacities.
function view(capacities) {
  return {
    epoch: 1n,
    id: { hi: 0n, lo: 1n },
    ids: BigUint64Array.from(capacities.flatMap((_, i) => [0n, BigInt(i + 1)])),
    capacity: Uint32Array.from(capacities),
    labels: [],
    joined: new Uint32Array(0),
    left: [],
    stable: true,
    seed: 7n,
  };
}

function bubbles(n) {
  return {
    id: BigUint64Array.from({ length: n }, (_, i) => BigInt(i)),
    entityCount: new Uint32Array(n),
    load: new Uint32Array(n),
    bounds: new Float32Array(0),
    current: new Uint32Array(0),
  };
}

test("every bubble goes to a member with capacity, in turn", () => {
  assert.deepEqual(Array.from(placement.place(view([1, 0, 2]), bubbles(4))), [0, 2, 0, 2]);
});

test("an empty view is declined", () => {
  assert.throws(() => placement.place(view([]), bubbles(1)), Decline);
});
