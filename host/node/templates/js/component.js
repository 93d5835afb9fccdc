// The component's entry point, what componentize-js builds: your policy from policy.js,
// guarded by luciole-policy.js (an exception becomes a logged fault, `Decline` a decline).
// Nothing to edit here.
import { log } from "luciole:policy/log@0.1.0";
import { guard } from "./luciole-policy.js";
import { {{kind}} as policy } from "./policy.js";

export const {{kind}} = guard(policy, log);
