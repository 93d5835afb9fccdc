// Coordinator policy `{{name}}`: the member with the lowest id among those with capacity (any
// member if none has). Change `choose` to decide otherwise; `throw new Decline("why")` to
// decline (the node's fallback then answers). Any other exception is a bug, reported as a
// fault with its type, message and line.
//
// How the contract's types look here: u64 values are BigInts and u32 numbers; member i has id
// (view.ids[2i], view.ids[2i + 1]) (high and low 64 bits) and capacity view.capacity[i];
// members are sorted by id; view.labels lists { member, key, value }. `current` is the index of
// the previous coordinator, or 0xffffffff.
import { Decline } from "./luciole-policy.js";

export const coordinator = {
  describe() {
    return { name: "{{name}}", version: "0.1.0" };
  },

  choose(view, current) {
    const members = view.capacity.length;
    if (members === 0) throw new Decline("an empty view");
    let pick = 0;
    for (let i = 0; i < members; i++) {
      if (view.capacity[i] > 0) {
        pick = i;
        break;
      }
    }
    return { hi: view.ids[2 * pick], lo: view.ids[2 * pick + 1] };
  },
};
