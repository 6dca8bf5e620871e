//! The one source of randomness of a simulation run: SplitMix64 seeded from the run's seed, so
//! every choice (what happens next, how long it takes, allocation ids) replays exactly.

use std::sync::{Arc, Mutex};

/// A small, fast, seedable generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct SimRng {
    state: u64,
}

impl SimRng {
    pub fn new(seed: u64) -> Self {
        SimRng {
            state: seed ^ 0x5DEE_CE66_D1CE_4E5B,
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1).max(1) as u64) as i64
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// An index chosen by weight.
    pub fn weighted(&mut self, weights: &[u64]) -> usize {
        let total: u64 = weights.iter().sum();
        let mut x = self.below(total);
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
}

/// Allocation ids drawn from their own seeded stream, shaped like UUIDs, for the jobs
/// controller's `ids` source.
pub fn id_source(seed: u64) -> Arc<dyn Fn() -> String + Send + Sync> {
    let rng = Mutex::new(SimRng::new(seed ^ 0x1D5));
    Arc::new(move || {
        let mut r = rng.lock().unwrap_or_else(|p| p.into_inner());
        let (a, b) = (r.next_u64(), r.next_u64());
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            (a >> 32) as u32,
            (a >> 16) as u16,
            a as u16,
            (b >> 48) as u16,
            b & 0xffff_ffff_ffff
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_stream() {
        let (mut a, mut b) = (SimRng::new(7), SimRng::new(7));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(SimRng::new(7).next_u64(), SimRng::new(8).next_u64());
        let (ia, ib) = (id_source(3), id_source(3));
        assert_eq!(ia(), ib());
    }

    #[test]
    fn weighted_and_between_stay_in_range() {
        let mut r = SimRng::new(1);
        for _ in 0..1000 {
            assert!(r.weighted(&[1, 0, 5]) != 1);
            let x = r.between(-3, 3);
            assert!((-3..=3).contains(&x));
        }
    }
}
