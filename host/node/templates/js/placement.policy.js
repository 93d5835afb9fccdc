// Placement policy `{{name}}`: bubbles dealt in turn to the members with capacity (to every
// member if none has). Change `place` to decide otherwise: it returns, for each bubble, the
// index of its member in the view. `throw new Decline("why")` to decline (the node's fallback
// then answers). Any other exception is a bug, reported as a fault with its type, message and
// line.
//
// How the contract's types look here: u64 values are BigInts and u32 numbers; member i has id
// (view.ids[2i], view.ids[2i + 1]) and capacity view.capacity[i]; members are sorted by id.
// Bubbles come as columns: bubble b has id bubbles.id[b] (a BigInt), bubbles.entityCount[b],
// bubbles.load[b], and bubbles.current[b] (the index of its member now, or 0xffffffff).
import { Decline } from "./luciole-policy.js";

export const placement = {
  describe() {
    return { name: "{{name}}", version: "0.1.0" };
  },

  place(view, bubbles) {
    const members = view.capacity.length;
    let hosts = [];
    for (let i = 0; i < members; i++) if (view.capacity[i] > 0) hosts.push(i);
    if (hosts.length === 0) hosts = Array.from({ length: members }, (_, i) => i);
    if (hosts.length === 0) throw new Decline("an empty view");
    const out = new Uint32Array(bubbles.id.length);
    for (let b = 0; b < bubbles.id.length; b++) {
      out[b] = hosts[Number(bubbles.id[b] % BigInt(hosts.length))];
    }
    return out;
  },
};
