//! Shared test vectors (`tests/vectors/*.json`): inputs and the decisions each policy must give.
//! The same files hold the Rust, JavaScript and Python versions of a policy, and the host's
//! built-in defaults, to the same answers.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use luciole_proto::migration::{
    Admission, Load, Migration, Outcome, PendingAction, Phase, Refusal, Role, Status, TimeoutAction,
};
use luciole_proto::placement::{Assignment, Bubble};
use luciole_proto::{BubbleId, EntityId, Epoch, Member, MemberId, MigrationId, View};

/// A vector file.
#[derive(Debug, Deserialize)]
pub struct File<C> {
    /// The cases.
    pub cases: Vec<C>,
}

/// Reads `tests/vectors/NAME.json`.
pub fn read<C: for<'de> Deserialize<'de>>(name: &str) -> Vec<C> {
    let path = format!("{}/vectors/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str::<File<C>>(&text).unwrap_or_else(|e| panic!("{path}: {e}")).cases
}

fn id(hex: &str) -> MemberId {
    hex.parse().unwrap_or_else(|e| panic!("{e}"))
}

fn view(members: &[(String, u32)]) -> View {
    let members = members.iter().map(|(m, c)| Member::new(id(m), *c)).collect();
    View::new(Epoch(1), members).expect("vector views are valid")
}

/// A coordinator case.
#[derive(Debug, Deserialize)]
pub struct CoordinatorCase {
    /// What it shows.
    pub name: String,
    members: Vec<(String, u32)>,
    current: Option<String>,
    expect: BTreeMap<String, String>,
}

impl CoordinatorCase {
    /// The view.
    pub fn view(&self) -> View {
        view(&self.members)
    }
    /// The previous coordinator.
    pub fn current(&self) -> Option<MemberId> {
        self.current.as_deref().map(id)
    }
    /// The answer `policy` must give, if the case covers it.
    pub fn expect(&self, policy: &str) -> Option<MemberId> {
        self.expect.get(policy).map(|m| id(m))
    }
}

/// A placement case.
#[derive(Debug, Deserialize)]
pub struct PlacementCase {
    /// What it shows.
    pub name: String,
    members: Vec<(String, u32)>,
    /// `(bubble id, load)`.
    bubbles: Vec<(u64, u32)>,
    current: Vec<(u64, String)>,
    expect: BTreeMap<String, Vec<(u64, String)>>,
}

fn assignments(v: &[(u64, String)]) -> Vec<Assignment> {
    v.iter().map(|(b, m)| Assignment { bubble: BubbleId(*b), member: id(m) }).collect()
}

impl PlacementCase {
    /// The view.
    pub fn view(&self) -> View {
        view(&self.members)
    }
    /// The bubbles, sorted by id.
    pub fn bubbles(&self) -> Vec<Bubble> {
        self.bubbles.iter().map(|&(b, load)| Bubble { load, ..Bubble::new(BubbleId(b)) }).collect()
    }
    /// The current placement.
    pub fn current(&self) -> Vec<Assignment> {
        assignments(&self.current)
    }
    /// The placement `policy` must give (sorted by bubble), if the case covers it.
    pub fn expect(&self, policy: &str) -> Option<Vec<Assignment>> {
        self.expect.get(policy).map(|v| assignments(v))
    }
}

/// A migration case: one decision point.
#[derive(Debug, Deserialize)]
pub struct MigrationCase {
    /// What it shows.
    pub name: String,
    /// `request`, `prepare`, `vote`, `timeout` or `view-change`.
    pub call: String,
    load: Option<[u32; 4]>,
    status: Option<(String, String, u32, u64)>,
    vote: Option<String>,
    pending: Option<Vec<(String, String, u32, u64)>>,
    expect: BTreeMap<String, Value>,
}

/// The decision points a migration policy answers, however it is implemented.
pub trait MigrationDecider {
    /// Source: start a requested migration?
    fn request(&self, m: &Migration, load: &Load) -> Admission;
    /// Target: admit a prepare?
    fn prepare(&self, m: &Migration, load: &Load) -> Admission;
    /// Source: outcome after the vote.
    fn vote(&self, status: &Status, vote: Admission) -> Outcome;
    /// Either side: the phase timer fired.
    fn timeout(&self, status: &Status) -> TimeoutAction;
    /// Either side: a view change.
    fn view_change(&self, view: &View, pending: &[Status]) -> Vec<PendingAction>;
}

fn migration() -> Migration {
    Migration {
        id: MigrationId(0x77),
        entity: EntityId(0x42),
        source: MemberId(1),
        target: MemberId(2),
        source_bubble: BubbleId(0),
        target_bubble: BubbleId(1),
        epoch: Epoch(1),
    }
}

fn status((role, phase, attempt, elapsed_ms): &(String, String, u32, u64)) -> Status {
    let role = match role.as_str() {
        "source" => Role::Source,
        "target" => Role::Target,
        other => panic!("role {other:?}"),
    };
    let phase = match phase.as_str() {
        "requested" => Phase::Requested,
        "preparing" => Phase::Preparing,
        "prepared" => Phase::Prepared,
        "committing" => Phase::Committing,
        "committed" => Phase::Committed,
        "aborting" => Phase::Aborting,
        "aborted" => Phase::Aborted,
        other => panic!("phase {other:?}"),
    };
    Status { migration: migration(), role, phase, attempt: *attempt, elapsed_ms: *elapsed_ms }
}

fn refusal(s: &str) -> Refusal {
    match s {
        "over-capacity" => Refusal::OverCapacity,
        "too-busy" => Refusal::TooBusy,
        "draining" => Refusal::Draining,
        "declined" => Refusal::Declined,
        other => panic!("refusal {other:?}"),
    }
}

fn refusal_name(r: Refusal) -> &'static str {
    match r {
        Refusal::OverCapacity => "over-capacity",
        Refusal::TooBusy => "too-busy",
        Refusal::Draining => "draining",
        Refusal::Declined => "declined",
    }
}

fn admission_name(a: Admission) -> String {
    match a {
        Admission::Admit => "admit".into(),
        Admission::Refuse(r) => format!("refuse:{}", refusal_name(r)),
    }
}

impl MigrationCase {
    /// The decision `policy` must give, if the case covers it.
    pub fn expect(&self, policy: &str) -> Option<&Value> {
        self.expect.get(policy)
    }

    /// Asks `decider` and encodes its decision the way the vectors write it.
    pub fn run(&self, decider: &dyn MigrationDecider) -> Value {
        let m = migration();
        let load = || {
            let [entities, entities_max, in_flight, in_flight_max] = self.load.expect("load");
            Load { entities, entities_max, in_flight, in_flight_max }
        };
        let st = || status(self.status.as_ref().expect("status"));
        match self.call.as_str() {
            "request" => admission_name(decider.request(&m, &load())).into(),
            "prepare" => admission_name(decider.prepare(&m, &load())).into(),
            "vote" => {
                let vote = match self.vote.as_deref().expect("vote") {
                    "admit" => Admission::Admit,
                    other => {
                        Admission::Refuse(refusal(other.strip_prefix("refuse:").expect("refuse:…")))
                    }
                };
                match decider.vote(&st(), vote) {
                    Outcome::Commit => "commit".into(),
                    Outcome::Abort => "abort".into(),
                }
            }
            "timeout" => match decider.timeout(&st()) {
                TimeoutAction::Retry(ms) => format!("retry:{ms}").into(),
                TimeoutAction::Wait(ms) => format!("wait:{ms}").into(),
                TimeoutAction::Abort => "abort".into(),
            },
            "view-change" => {
                let pending: Vec<Status> =
                    self.pending.as_ref().expect("pending").iter().map(status).collect();
                let v = View::new(
                    Epoch(2),
                    vec![Member::new(MemberId(1), 1), Member::new(MemberId(2), 1)],
                )
                .expect("valid");
                let actions = decider.view_change(&v, &pending);
                Value::Array(
                    actions
                        .into_iter()
                        .map(|a| match a {
                            PendingAction::Keep => "keep".into(),
                            PendingAction::Abort => "abort".into(),
                        })
                        .collect(),
                )
            }
            other => panic!("call {other:?}"),
        }
    }
}
