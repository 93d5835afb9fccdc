// Helpers for luciole policies written in JavaScript (componentize-js).
//
// In the policy (plain JavaScript, testable with Node):
//
//   import { Decline } from "./luciole-policy.js";
//   export const coordinator = {
//     describe() { return { name: "mine", version: "0.1.0" }; },
//     choose(view, current) {
//       if (view.capacity.length === 0) throw new Decline("an empty view");
//       ...
//     },
//   };
//
// In the component's entry point (what componentize-js builds):
//
//   import { log } from "luciole:policy/log@0.1.0";
//   import { guard } from "./luciole-policy.js";
//   import { coordinator as policy } from "./policy.js";
//   export const coordinator = guard(policy, log);
//
// This file imports nothing, so Node runs the policy's tests without the component.
//
// What `guard` does to every method of the object:
//
// - `throw new Decline("why")` declines the call (coordinator and placement only): the
//   node's fallback answers, the decline is counted and logged with your message. Throwing
//   `{ message: "why" }` still does the same.
// - Any other exception is a bug: it is written to the node's log at error level with its
//   type, message, file, line and stack, and the call then stops with a trap. The node counts
//   it as a fault of your policy (repeated faults quarantine it) and answers with its
//   fallback.
//
// Without `guard`, componentize-js turns every exception of `choose` or `place` — a
// TypeError included — into a decline, so a bug looks like a policy saying no.

// The node keeps 1 KiB of a message and 256 bytes of a field's value.
const MESSAGE_MAX = 1000;
const FIELD_MAX = 250;
// The functions that may decline: the others have no error to return.
const MAY_DECLINE = new Set(["choose", "place"]);

export class Decline extends Error {
  constructor(message) {
    super(message);
    this.name = "Decline";
  }
}

export function guard(methods, log) {
  const guarded = {};
  for (const name of Object.keys(methods)) {
    const method = methods[name];
    if (typeof method !== "function") {
      guarded[name] = method;
      continue;
    }
    guarded[name] = function (...args) {
      let error;
      try {
        return method.apply(methods, args);
      } catch (e) {
        error = e;
      }
      if (isDecline(error) && MAY_DECLINE.has(name)) {
        throw { message: String(error.message) };
      }
      const note = isDecline(error)
        ? "a migration decision cannot decline: answer it instead"
        : undefined;
      report(log, name, error, note);
      trap();
    };
  }
  return guarded;
}

function isDecline(e) {
  return e instanceof Decline;
}

// Where an exception was thrown: the first stack frame outside this file.
function origin(e) {
  const frames = typeof e?.stack === "string" ? e.stack.split("\n").filter((l) => l) : [];
  const parsed = frames
    .map((line) => {
      // SpiderMonkey: "function@file:line:column"
      const m = /^(.*)@(.*):(\d+):(\d+)$/.exec(line);
      return m ? { fn: m[1] || "(anonymous)", file: short(m[2]), line: m[3] } : null;
    })
    .filter((f) => f && !f.file.endsWith("luciole-policy.js"));
  if (parsed.length === 0 && e?.fileName) {
    parsed.push({ fn: "", file: short(e.fileName), line: String(e.lineNumber ?? "") });
  }
  return parsed;
}

function short(path) {
  return String(path).split("/").pop();
}

function report(log, name, e, note) {
  try {
    const kind = e instanceof Error ? e.name : typeof e;
    const text = e instanceof Error ? e.message : String(e);
    const frames = origin(e);
    const at = frames[0];
    let message = `uncaught ${kind} in ${name}: ${text} (at ${at ? `${at.file}:${at.line}` : "unknown"})`;
    if (note) message += `; ${note}`;
    const stack = frames.map((f) => `${f.fn} ${f.file}:${f.line}`).join(" <- ");
    log("error", message.slice(0, MESSAGE_MAX), [
      { key: "exception", value: kind },
      { key: "message", value: text.slice(0, FIELD_MAX) },
      { key: "file", value: at ? at.file : "" },
      { key: "line", value: at ? at.line : "" },
      { key: "function", value: at ? at.fn : name },
      { key: "stack", value: stack.slice(0, FIELD_MAX) },
    ]);
  } catch {
    // Reporting must never hide the error itself.
  }
}

// Stops the call with a WebAssembly trap, so the node counts a fault rather than a decline:
// componentize-js cannot turn this value into the contract's error (a Symbol is no string)
// and traps.
function trap() {
  throw { message: Symbol("luciole: uncaught exception") };
}
