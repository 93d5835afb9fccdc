// Placement `rendezvous` in JavaScript: every bubble goes to the member with the highest
// pseudo-random weight for that (member, bubble) pair; ties go to the lower id. The same
// integer arithmetic as the Rust reference, so every node — whatever language its policy is
// in — places every bubble on the same member.
//
// u64 values arrive as BigInt; arithmetic is masked to 64 bits.

const M64 = (1n << 64n) - 1n;

// The splitmix64 finaliser.
function mix(z) {
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
  return z ^ (z >> 31n);
}

export const placement = {
  describe() {
    return { name: "js-rendezvous", version: "0.1.0" };
  },

  // One member index per bubble. Members with capacity zero host nothing, unless all do.
  place(view, bubbles) {
    const n = view.capacity.length;
    let allZero = true;
    for (let i = 0; i < n; i++) if (view.capacity[i] !== 0) allZero = false;
    const keys = [];
    const index = [];
    for (let i = 0; i < n; i++) {
      if (allZero || view.capacity[i] > 0) {
        keys.push(mix(BigInt(view.ids[2 * i]) ^ mix(BigInt(view.ids[2 * i + 1]))));
        index.push(i);
      }
    }
    if (keys.length === 0) {
      throw { message: "no members" };
    }
    const out = new Uint32Array(bubbles.id.length);
    for (let b = 0; b < bubbles.id.length; b++) {
      const salt = (BigInt(bubbles.id[b]) * 0x9e3779b97f4a7c15n) & M64;
      let best = 0;
      let bestWeight = mix(keys[0] ^ salt);
      // Members are in ascending id order, so `>` keeps the lower id on ties.
      for (let i = 1; i < keys.length; i++) {
        const w = mix(keys[i] ^ salt);
        if (w > bestWeight) {
          bestWeight = w;
          best = i;
        }
      }
      out[b] = index[best];
    }
    return out;
  },
};
