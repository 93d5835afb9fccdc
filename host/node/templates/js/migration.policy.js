// Migration policy `{{name}}`: the reference decisions of the two-phase commit — start and
// admit while under the node's limits, commit exactly when the target admitted, resend every
// 100 ms and give up only while nothing can have been committed, presumed abort of what is
// undecided on a view change. Change a function to decide otherwise; the node overrules any
// answer that would lose or duplicate an entity (and counts it as a fault). Migration
// decisions cannot decline: any exception is a bug, reported as a fault with its line.
//
// How the contract's types look here: enums are strings ("source", "committing", "too-busy");
// variants are { tag, val } objects ({ tag: "refuse", val: "too-busy" }, { tag: "retry",
// val: 100 }); u64 values (ids, epoch, elapsedMs) are BigInts, u32 values numbers.

export const migration = {
  describe() {
    return { name: "{{name}}", version: "0.1.0" };
  },

  // Source: start moving an entity?
  onRequest(migration, load) {
    if (load.inFlight < load.inFlightMax) return { tag: "admit" };
    return { tag: "refuse", val: "too-busy" };
  },

  // Target: take the entity?
  onPrepare(migration, load) {
    if (load.entities >= load.entitiesMax) return { tag: "refuse", val: "over-capacity" };
    if (load.inFlight >= load.inFlightMax) return { tag: "refuse", val: "too-busy" };
    return { tag: "admit" };
  },

  // Source: the target voted; commit or abort?
  onVote(status, vote) {
    return vote.tag === "admit" ? "commit" : "abort";
  },

  // A phase's timer fired: send again, wait, or give up?
  onTimeout(status) {
    if (status.phase === "committed" || status.phase === "aborted") {
      return { tag: "wait", val: 1000 };
    }
    const exhausted = status.attempt >= 3 || status.elapsedMs >= 300n;
    if (exhausted && status.phase !== "aborting" && abortAllowed(status.role, status.phase)) {
      return { tag: "abort" };
    }
    return { tag: "retry", val: 100 };
  },

  // The view changed: for each migration in progress, keep it or abort it.
  onViewChange(view, pending) {
    return pending.map((s) => {
      const undecided = s.phase === "requested" || s.phase === "preparing";
      return undecided && abortAllowed(s.role, s.phase) ? "abort" : "keep";
    });
  },
};

// Where giving up is safe: nothing can have been committed yet.
export function abortAllowed(role, phase) {
  if (phase === "aborting" || phase === "aborted") return true;
  if (role === "source") return phase === "requested" || phase === "preparing";
  return phase === "preparing";
}
