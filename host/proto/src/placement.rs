//! Bubbles and their placement on members.

use serde::{Deserialize, Serialize};

use crate::ids::{BubbleId, MemberId};

/// A point in simulation space.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// x coordinate.
    pub x: f32,
    /// y coordinate.
    pub y: f32,
    /// z coordinate.
    pub z: f32,
}

/// An axis-aligned box: `min` inclusive, `max` exclusive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    /// Lowest corner (inclusive).
    pub min: Point,
    /// Highest corner (exclusive).
    pub max: Point,
}

/// A bubble as placement sees it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bubble {
    /// The bubble's identity.
    pub id: BubbleId,
    /// The region it covers.
    #[serde(default)]
    pub bounds: Bounds,
    /// Entities in it now.
    #[serde(default)]
    pub entity_count: u32,
    /// Load in abstract units; zero when unknown.
    #[serde(default)]
    pub load: u32,
}

impl Bubble {
    /// A bubble with no bounds, entities or load: enough for placement by id.
    pub fn new(id: BubbleId) -> Self {
        Self { id, bounds: Bounds::default(), entity_count: 0, load: 0 }
    }
}

/// One bubble hosted by one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Assignment {
    /// The bubble.
    pub bubble: BubbleId,
    /// Its host.
    pub member: MemberId,
}
