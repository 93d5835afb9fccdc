//! The author's own inputs for `luciole policy test --cases FILE.toml`, with the answers they
//! expect.
//!
//! ```toml
//! [[case]]
//! name = "lowest id wins"
//! members = [
//!   { id = 5, capacity = 1 },                       # an id: a number, or 32 hex digits
//!   { id = 2, capacity = 3, labels = { zone = "a" } },
//! ]
//! current = 5          # coordinator only: the current coordinator (optional)
//! expect = 2           # coordinator: the member it must choose
//!
//! [[case]]
//! name = "nothing on a member at capacity 0"
//! members = [{ id = 1 }, { id = 2, capacity = 0 }]  # capacity defaults to 1
//! bubbles = 16                                      # placement: bubbles 0..16
//! expect = { 0 = 1 }                                # placement: bubble → member (any subset)
//! expect_members = [1]                              # every answer (bubble) on one of these
//! ```
//!
//! `expect_members` works for both kinds: a coordinator's choice, or every bubble's member,
//! must be one of them. A case without `expect` or `expect_members` is run and printed only.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use luciole_proto::placement::{Assignment, Bubble};
use luciole_proto::{BubbleId, Epoch, Label, Member, MemberId, View};
use serde::Deserialize;

/// A cases file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(rename = "case", default)]
    cases: Vec<Spec>,
}

/// A member id as written: a number, or 32 hex digits.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum Id {
    Number(u64),
    Hex(String),
}

impl Id {
    fn member(&self) -> anyhow::Result<MemberId> {
        match self {
            Id::Number(n) => Ok(MemberId(u128::from(*n))),
            Id::Hex(s) => s.parse().map_err(|_| {
                anyhow::anyhow!("{s:?} is not a member id (a number, or 32 hex digits)")
            }),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberSpec {
    id: Id,
    #[serde(default = "one")]
    capacity: u32,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    name: String,
    #[serde(default = "first_epoch")]
    epoch: u64,
    members: Vec<MemberSpec>,
    current: Option<Id>,
    bubbles: Option<u64>,
    expect: Option<toml::Value>,
    expect_members: Option<Vec<Id>>,
}

fn first_epoch() -> u64 {
    1
}

/// What a case expects of the answer.
#[derive(Clone, Debug, Default)]
pub struct Expect {
    /// Coordinator: the member chosen.
    pub coordinator: Option<MemberId>,
    /// Placement: these bubbles on these members.
    pub placed: BTreeMap<BubbleId, MemberId>,
    /// Every answer on one of these members.
    pub members: Option<Vec<MemberId>>,
}

impl Expect {
    /// What is wrong with a coordinator's answer, if anything.
    pub fn check_coordinator(&self, chosen: MemberId) -> Option<String> {
        if let Some(want) = self.coordinator
            && want != chosen
        {
            return Some(format!("expected coordinator {want}, got {chosen}"));
        }
        match &self.members {
            Some(allowed) if !allowed.contains(&chosen) => {
                Some(format!("coordinator {chosen} is not one of the expected members"))
            }
            _ => None,
        }
    }

    /// What is wrong with a placement, if anything.
    pub fn check_placement(&self, placed: &[Assignment]) -> Option<String> {
        let got: BTreeMap<BubbleId, MemberId> =
            placed.iter().map(|a| (a.bubble, a.member)).collect();
        for (bubble, want) in &self.placed {
            match got.get(bubble) {
                Some(m) if m == want => {}
                Some(m) => return Some(format!("expected bubble {} on {want}, got {m}", bubble.0)),
                None => return Some(format!("expected bubble {} on {want}, not placed", bubble.0)),
            }
        }
        if let Some(allowed) = &self.members
            && let Some(a) = placed.iter().find(|a| !allowed.contains(&a.member))
        {
            return Some(format!(
                "bubble {} on {}, which is not one of the expected members",
                a.bubble.0, a.member
            ));
        }
        None
    }
}

/// One of the author's cases, ready to run.
#[derive(Debug)]
pub struct AuthorCase {
    /// Its name.
    pub name: String,
    /// The view.
    pub view: View,
    /// The bubbles (placement).
    pub bubbles: Vec<Bubble>,
    /// The current coordinator (coordinator).
    pub current: Option<MemberId>,
    /// What it expects.
    pub expect: Expect,
}

/// Reads and checks `path`.
pub fn load(path: &Path) -> anyhow::Result<Vec<AuthorCase>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: File = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))?;
    if file.cases.is_empty() {
        anyhow::bail!("{}: no [[case]] in it", path.display());
    }
    file.cases
        .into_iter()
        .map(|spec| {
            let name = spec.name.clone();
            case(spec).with_context(|| format!("{}: case {name:?}", path.display()))
        })
        .collect()
}

fn case(spec: Spec) -> anyhow::Result<AuthorCase> {
    let mut members = Vec::with_capacity(spec.members.len());
    for m in &spec.members {
        let mut member = Member::new(m.id.member()?, m.capacity);
        member.labels =
            m.labels.iter().map(|(k, v)| Label { key: k.clone(), value: v.clone() }).collect();
        members.push(member);
    }
    let view = View::new(Epoch(spec.epoch), members).map_err(|e| anyhow::anyhow!("{e}"))?;
    let bubbles = (0..spec.bubbles.unwrap_or(0)).map(|b| Bubble::new(BubbleId(b))).collect();
    let mut expect = Expect::default();
    match (&spec.expect, spec.bubbles.is_some()) {
        (None, _) => {}
        (Some(toml::Value::Table(t)), true) => {
            for (bubble, member) in t {
                let b: u64 = bubble
                    .parse()
                    .map_err(|_| anyhow::anyhow!("expect: {bubble:?} is not a bubble number"))?;
                let id: Id = member
                    .clone()
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("expect: bubble {b} must name a member id"))?;
                expect.placed.insert(BubbleId(b), id.member()?);
            }
        }
        (Some(v), false) => {
            let id: Id = v
                .clone()
                .try_into()
                .map_err(|_| anyhow::anyhow!("expect: a coordinator case expects one member id"))?;
            expect.coordinator = Some(id.member()?);
        }
        (Some(_), true) => {
            anyhow::bail!("expect: a placement case (with bubbles) expects {{ bubble = member }}")
        }
    }
    if let Some(ids) = &spec.expect_members {
        expect.members = Some(ids.iter().map(Id::member).collect::<anyhow::Result<_>>()?);
    }
    let current = spec.current.as_ref().map(Id::member).transpose()?;
    Ok(AuthorCase { name: spec.name, view, bubbles, current, expect })
}
