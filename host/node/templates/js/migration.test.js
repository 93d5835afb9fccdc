// `npm test` runs this with Node, on the policy itself (no component needed).
import { test } from "node:test";
import assert from "node:assert/strict";
import { migration } from "../policy.js";

function status(role, phase, attempt) {
  const id = { hi: 0n, lo: 1n };
  const m = {
    id,
    entity: id,
    source: id,
    target: { hi: 0n, lo: 2n },
    sourceBubble: 0n,
    targetBubble: 1n,
    epoch: 1n,
  };
  return { migration: m, role, phase, attempt, elapsedMs: 0n };
}

test("a decided commit is never given up", () => {
  const action = migration.onTimeout(status("source", "committing", 50));
  assert.notEqual(action.tag, "abort");
});

test("an admitted vote commits", () => {
  assert.equal(migration.onVote(status("source", "preparing", 1), { tag: "admit" }), "commit");
});

test("a full node refuses to take an entity", () => {
  const load = { entities: 10, entitiesMax: 10, inFlight: 0, inFlightMax: 8 };
  assert.deepEqual(migration.onPrepare(status("target", "preparing", 1).migration, load), {
    tag: "refuse",
    val: "over-capacity",
  });
});
