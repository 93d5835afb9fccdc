//! The spatial world a luciole cluster hosts in its demo and tests: a box cut into a grid of
//! bubbles, and entities with a position and a velocity that a seeded workload moves in fixed
//! time buckets. An entity owned in one bubble that strays into another by more than a margin
//! should migrate there ([`Grid::crossing`]); the margin keeps an entity sliding along a border
//! from migrating back and forth.
//!
//! Pure and deterministic like the protocol cores: no clock (the caller passes the bucket's
//! length), no randomness but the caller's seeded [`SplitMix64`], only IEEE-exact arithmetic
//! (`+ - * /` and `sqrt`), so every node computes the same motion from the same inputs. What
//! an entity carries besides its motion (its state) is the caller's business.

use serde::{Deserialize, Serialize};

use crate::ids::BubbleId;
use crate::rand::SplitMix64;

/// A point or a vector in the world.
pub type Vec3 = [f64; 3];

/// Most bubbles along one axis (a grid has at most this cubed).
pub const GRID_CELLS_MAX: u32 = 64;

/// A box of `cells[0] × cells[1] × cells[2]` bubbles, each a cube of side `cell_size`, with one
/// corner at the origin. Bubble ids number the cells x fastest, then y, then z.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    /// Bubbles along x, y and z.
    pub cells: [u32; 3],
    /// The side of one bubble.
    pub cell_size: f64,
}

impl Default for Grid {
    /// 4 × 4 × 4 unit cubes.
    fn default() -> Self {
        Self { cells: [4, 4, 4], cell_size: 1.0 }
    }
}

/// Why a grid cannot be used.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GridError {
    /// An axis has no bubble or more than [`GRID_CELLS_MAX`].
    #[error("a grid has 1 to {GRID_CELLS_MAX} bubbles along each axis, not {0:?}")]
    Cells([u32; 3]),
    /// The bubble size is not a positive finite number.
    #[error("a bubble's side must be a positive finite number, not {0}")]
    CellSize(f64),
}

impl Grid {
    /// A grid, checked.
    pub fn new(cells: [u32; 3], cell_size: f64) -> Result<Self, GridError> {
        if cells.iter().any(|&c| c == 0 || c > GRID_CELLS_MAX) {
            return Err(GridError::Cells(cells));
        }
        if !(cell_size.is_finite() && cell_size > 0.0) {
            return Err(GridError::CellSize(cell_size));
        }
        Ok(Self { cells, cell_size })
    }

    /// How many bubbles.
    pub fn len(&self) -> u64 {
        self.cells.iter().map(|&c| u64::from(c)).product()
    }

    /// Never: a grid has at least one bubble.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Every bubble, in id order.
    pub fn bubbles(&self) -> impl Iterator<Item = BubbleId> + use<> {
        (0..self.len()).map(BubbleId)
    }

    /// The box's far corner (the near one is the origin).
    pub fn size(&self) -> Vec3 {
        self.cells.map(|c| f64::from(c) * self.cell_size)
    }

    /// The bubble's cell coordinates, or `None` for an id outside the grid.
    fn cell(&self, b: BubbleId) -> Option<[u32; 3]> {
        if b.0 >= self.len() {
            return None;
        }
        let [nx, ny, _] = self.cells.map(u64::from);
        Some([(b.0 % nx) as u32, (b.0 / nx % ny) as u32, (b.0 / (nx * ny)) as u32])
    }

    /// The bubble containing `p`; a point outside the box belongs to the nearest bubble.
    pub fn bubble_at(&self, p: Vec3) -> BubbleId {
        let mut idx = [0u64; 3];
        for axis in 0..3 {
            let c = (p[axis] / self.cell_size).floor();
            // NaN and points before the box land in cell 0, points past it in the last cell.
            let last = f64::from(self.cells[axis] - 1);
            idx[axis] = if c >= 0.0 { c.min(last) as u64 } else { 0 };
        }
        let [nx, ny, _] = self.cells.map(u64::from);
        BubbleId(idx[0] + nx * (idx[1] + ny * idx[2]))
    }

    /// The bubble's near and far corners, or `None` for an id outside the grid.
    pub fn bounds(&self, b: BubbleId) -> Option<(Vec3, Vec3)> {
        let cell = self.cell(b)?;
        let lo = cell.map(|c| f64::from(c) * self.cell_size);
        let hi = cell.map(|c| f64::from(c + 1) * self.cell_size);
        Some((lo, hi))
    }

    /// The bubble's centre, or `None` for an id outside the grid.
    pub fn centre(&self, b: BubbleId) -> Option<Vec3> {
        let (lo, hi) = self.bounds(b)?;
        Some([0, 1, 2].map(|a| (lo[a] + hi[a]) / 2.0))
    }

    /// How far `p` lies outside bubble `b` along the axis where it is farthest out (0 inside).
    pub fn outside_by(&self, b: BubbleId, p: Vec3) -> Option<f64> {
        let (lo, hi) = self.bounds(b)?;
        let out = (0..3).map(|a| (lo[a] - p[a]).max(p[a] - hi[a]).max(0.0));
        Some(out.fold(0.0, f64::max))
    }

    /// Where an entity at `p`, owned in bubble `current`, should migrate: the bubble it is in,
    /// once it is outside `current` by more than `margin`. `None` while it should stay.
    pub fn crossing(&self, current: BubbleId, p: Vec3, margin: f64) -> Option<BubbleId> {
        let out = self.outside_by(current, p)?;
        (out > margin).then(|| self.bubble_at(p)).filter(|&b| b != current)
    }
}

/// An entity's motion.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Body {
    /// Where it is.
    pub pos: Vec3,
    /// Where it goes, per second.
    pub vel: Vec3,
}

/// How the workload moves entities.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Motion {
    /// Each entity turns randomly: every second its velocity gets a random kick of about
    /// `speed`, and its speed stays at most `speed`.
    RandomWalk {
        /// The most distance per second.
        speed: f64,
    },
    /// Entities of one bubble flock: each steers toward its bubble-mates' mean velocity
    /// (alignment) and their centre (cohesion), with a little random turning, at most `speed`.
    Flock {
        /// The most distance per second.
        speed: f64,
    },
}

impl Motion {
    fn speed(&self) -> f64 {
        match *self {
            Motion::RandomWalk { speed } | Motion::Flock { speed } => speed,
        }
    }
}

/// A body at a random place in the grid's box with a random velocity below `speed`.
pub fn spawn(grid: &Grid, speed: f64, rng: &mut SplitMix64) -> Body {
    let size = grid.size();
    let pos = size.map(|s| unit(rng) * s);
    let vel = clamp([0; 3].map(|_| (unit(rng) * 2.0 - 1.0) * speed), speed);
    Body { pos, vel }
}

/// Advances `bodies` by `dt_s` seconds as `motion` says, grouped for flocking by the bubble
/// `bubble_of` gives each one (its owner's bubble, not where it stands). Bodies bounce off the
/// box's walls and never leave it.
pub fn step<K>(
    grid: &Grid,
    bodies: &mut [(K, Body)],
    bubble_of: impl Fn(&K) -> BubbleId,
    motion: Motion,
    dt_s: f64,
    rng: &mut SplitMix64,
) {
    let speed = motion.speed();
    let dt = dt_s.max(0.0);
    // Flocking looks at each bubble's mean position and velocity before anyone moves.
    let flock = match motion {
        Motion::Flock { .. } => Some(bubble_means(bodies, &bubble_of)),
        Motion::RandomWalk { .. } => None,
    };
    for (key, body) in bodies.iter_mut() {
        let kick = [0; 3].map(|_| (unit(rng) * 2.0 - 1.0) * speed);
        let mut accel = kick;
        if let Some(means) = &flock
            && let Ok(i) = means.binary_search_by_key(&bubble_of(key), |(b, ..)| *b)
        {
            let (_, centre, vel) = &means[i];
            for a in 0..3 {
                let align = vel[a] - body.vel[a];
                let cohere = centre[a] - body.pos[a];
                accel[a] = 3.0 * align + 0.3 * cohere + 0.1 * kick[a];
            }
        }
        for (v, acc) in body.vel.iter_mut().zip(accel) {
            *v += acc * dt;
        }
        body.vel = clamp(body.vel, speed);
        let axes = body.pos.iter_mut().zip(body.vel.iter_mut()).zip(grid.size());
        for ((pos, vel), size) in axes {
            let mut p = *pos + *vel * dt;
            if p < 0.0 {
                p = -p;
                *vel = vel.abs();
            }
            if p > size {
                p = 2.0 * size - p;
                *vel = -vel.abs();
            }
            *pos = p.clamp(0.0, size);
        }
    }
}

/// Each bubble's mean position and velocity over `bodies`, in bubble order.
fn bubble_means<K>(
    bodies: &[(K, Body)],
    bubble_of: &impl Fn(&K) -> BubbleId,
) -> Vec<(BubbleId, Vec3, Vec3)> {
    let mut sums: std::collections::BTreeMap<BubbleId, (Vec3, Vec3, f64)> = Default::default();
    for (key, body) in bodies {
        let (pos, vel, n) = sums.entry(bubble_of(key)).or_insert(([0.0; 3], [0.0; 3], 0.0));
        for a in 0..3 {
            pos[a] += body.pos[a];
            vel[a] += body.vel[a];
        }
        *n += 1.0;
    }
    sums.into_iter().map(|(b, (pos, vel, n))| (b, pos.map(|x| x / n), vel.map(|x| x / n))).collect()
}

/// `v` scaled down to length `max` if it is longer.
fn clamp(v: Vec3, max: f64) -> Vec3 {
    let len = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    if len > max && len > 0.0 { v.map(|x| x * max / len) } else { v }
}

/// A uniform number in [0, 1) from 53 random bits.
fn unit(rng: &mut SplitMix64) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bubbles_number_the_cells_x_fastest() {
        let g = Grid::new([4, 3, 2], 0.5).unwrap();
        assert_eq!(g.len(), 24);
        assert_eq!(g.bubble_at([0.1, 0.1, 0.1]), BubbleId(0));
        assert_eq!(g.bubble_at([0.6, 0.1, 0.1]), BubbleId(1));
        assert_eq!(g.bubble_at([0.1, 0.6, 0.1]), BubbleId(4));
        assert_eq!(g.bubble_at([0.1, 0.1, 0.6]), BubbleId(12));
        assert_eq!(g.bounds(BubbleId(23)), Some(([1.5, 1.0, 0.5], [2.0, 1.5, 1.0])));
        assert_eq!(g.bounds(BubbleId(24)), None);
        // Outside the box: the nearest bubble; NaN: the first along that axis.
        assert_eq!(g.bubble_at([-5.0, 9.0, f64::NAN]), BubbleId(8));
    }

    #[test]
    fn bad_grids_are_refused_with_what_is_wrong() {
        assert_eq!(Grid::new([0, 4, 4], 1.0), Err(GridError::Cells([0, 4, 4])));
        assert_eq!(Grid::new([4, 65, 4], 1.0), Err(GridError::Cells([4, 65, 4])));
        assert!(matches!(Grid::new([4, 4, 4], f64::NAN), Err(GridError::CellSize(_))));
        assert_eq!(Grid::new([4, 4, 4], -1.0), Err(GridError::CellSize(-1.0)));
        assert_eq!(Grid::new([4, 4, 4], 1.0), Ok(Grid::default()));
    }

    #[test]
    fn an_entity_migrates_only_once_past_the_margin() {
        let g = Grid::default();
        let b0 = g.bubble_at([0.5, 0.5, 0.5]);
        assert_eq!(g.crossing(b0, [0.99, 0.5, 0.5], 0.05), None, "inside");
        assert_eq!(g.crossing(b0, [1.04, 0.5, 0.5], 0.05), None, "within the margin");
        assert_eq!(g.crossing(b0, [1.06, 0.5, 0.5], 0.05), Some(BubbleId(1)));
        // Diagonal: the farthest-out axis decides; the destination is where it stands.
        assert_eq!(g.crossing(b0, [1.02, 1.07, 0.5], 0.05), Some(BubbleId(5)));
        assert_eq!(g.crossing(BubbleId(99), [0.5, 0.5, 0.5], 0.05), None, "no such bubble");
    }

    proptest! {
        #[test]
        fn every_point_of_the_box_is_in_the_bubble_that_contains_it(
            x in 0.0..4.0f64, y in 0.0..4.0f64, z in 0.0..4.0f64,
        ) {
            let g = Grid::default();
            let b = g.bubble_at([x, y, z]);
            prop_assert_eq!(g.outside_by(b, [x, y, z]), Some(0.0));
            prop_assert_eq!(g.crossing(b, [x, y, z], 0.0), None);
        }

        #[test]
        fn bodies_stay_in_the_box_at_most_at_their_speed(
            seed in any::<u64>(), flock in any::<bool>(), dt in 0.0..2.0f64,
        ) {
            let g = Grid::new([3, 2, 5], 0.7).unwrap();
            let mut rng = SplitMix64::new(seed);
            let speed = 0.8;
            let mut bodies: Vec<(u32, Body)> =
                (0..50).map(|i| (i, spawn(&g, speed, &mut rng))).collect();
            let motion = if flock { Motion::Flock { speed } } else { Motion::RandomWalk { speed } };
            for _ in 0..20 {
                step(&g, &mut bodies, |k| BubbleId(u64::from(*k) % 3), motion, dt, &mut rng);
            }
            let size = g.size();
            for (_, b) in &bodies {
                let v = (b.vel[0] * b.vel[0] + b.vel[1] * b.vel[1] + b.vel[2] * b.vel[2]).sqrt();
                prop_assert!(v <= speed + 1e-9, "speed {}", v);
                for (p, s) in b.pos.iter().zip(size) {
                    prop_assert!((0.0..=s).contains(p), "{:?}", b.pos);
                }
            }
        }
    }

    #[test]
    fn the_same_seed_moves_the_same_way() {
        let g = Grid::default();
        let run = |seed| {
            let mut rng = SplitMix64::new(seed);
            let mut bodies: Vec<(u32, Body)> =
                (0..20).map(|i| (i, spawn(&g, 0.5, &mut rng))).collect();
            for _ in 0..50 {
                step(&g, &mut bodies, |_| BubbleId(0), Motion::Flock { speed: 0.5 }, 0.1, &mut rng);
            }
            bodies
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn a_flock_aligns_its_velocities() {
        let g = Grid::default();
        let spread = |bodies: &[(u32, Body)]| {
            let n = bodies.len() as f64;
            let mean: Vec3 =
                [0, 1, 2].map(|a| bodies.iter().map(|(_, b)| b.vel[a]).sum::<f64>() / n);
            bodies
                .iter()
                .map(|(_, b)| (0..3).map(|a| (b.vel[a] - mean[a]).powi(2)).sum::<f64>())
                .sum::<f64>()
                / n
        };
        let mut rng = SplitMix64::new(3);
        let mut flock: Vec<(u32, Body)> = (0..40).map(|i| (i, spawn(&g, 0.5, &mut rng))).collect();
        let mut walk = flock.clone();
        let before = spread(&flock);
        for _ in 0..30 {
            step(&g, &mut flock, |_| BubbleId(0), Motion::Flock { speed: 0.5 }, 0.1, &mut rng);
            step(&g, &mut walk, |_| BubbleId(0), Motion::RandomWalk { speed: 0.5 }, 0.1, &mut rng);
        }
        assert!(spread(&flock) < before / 4.0, "flock {} from {before}", spread(&flock));
        assert!(spread(&flock) < spread(&walk) / 4.0, "walk {}", spread(&walk));
    }
}
