// A coordinator with two deliberate bugs, for the tests of `luciole policy test` and of the
// JavaScript helper (guest-sdk/js): a TypeError in views of epoch 999, and an answer outside
// the view in views of more than 500 members. Otherwise the lowest id.
import { log } from "luciole:policy/log@0.1.0";
import { guard } from "../../../../guest-sdk/js/luciole-policy.js";

function lowest(view) {
  return { hi: view.ids[0], lo: view.ids[1] };
}

export const coordinator = guard(
  {
    describe() {
      return { name: "buggy-coordinator", version: "0.1.0" };
    },
    choose(view, current) {
      if (view.epoch === 999n) {
        const zone = null;
        return zone.leader; // the TypeError
      }
      if (view.capacity.length > 500) {
        return { hi: 0n, lo: BigInt(view.capacity.length) }; // not a member
      }
      return lowest(view);
    },
  },
  log,
);
