// Coordinator `lowest-id` in JavaScript: the member with the lowest id.
//
// The contract (wit/since_v0.1.0) gives the view's members sorted ascending by id, two u64
// numbers per member in `view.ids` (high half, then low half), so the lowest is the first.
// u64 values arrive as BigInt.

export const coordinator = {
  describe() {
    return { name: "js-lowest-id", version: "0.1.0" };
  },

  choose(view, current) {
    if (view.ids.length < 2) {
      // A declined call: the host answers with its fallback policy.
      throw { message: "empty view" };
    }
    return { hi: view.ids[0], lo: view.ids[1] };
  },
};
