//! Fully populated values for round-trip tests, the SDK cross-check and benchmarks.

use crate::scalar::Date;
use chrono::TimeZone;

/// A small deterministic generator (xorshift64*): the same seed gives the same document.
pub struct Gen {
    state: u64,
}

impl Gen {
    pub fn new(seed: u64) -> Self {
        Gen {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn string(&mut self, what: &str) -> String {
        // Markup characters and non-ASCII text on purpose; no leading/trailing blanks, which
        // some XML stacks trim.
        const PIECES: [&str; 6] = ["a<b", "&amp;", "q\"uo'te", "é漢字", "x>y", "plain"];
        let n = self.next_u64();
        format!("{what}-{}-{}", PIECES[(n % 6) as usize], n % 100_000)
    }

    pub fn integer(&mut self) -> i64 {
        (self.next_u64() >> 2) as i64 - (1 << 61)
    }

    pub fn decimal(&mut self) -> f64 {
        // Values that print and parse exactly in every language's float formatting.
        (self.next_u64() % 1_000_000) as f64 / 8.0
    }

    pub fn boolean(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }

    pub fn date(&mut self) -> Date {
        let ms = 1_500_000_000_000 + (self.next_u64() % 400_000_000_000) as i64;
        let offset = chrono::FixedOffset::east_opt(((self.below(27) as i32) - 13) * 3600).unwrap();
        offset.timestamp_millis_opt(ms).unwrap()
    }

    pub fn id(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }
}

pub trait Sample: Sized {
    /// A value with every attribute set; nested structs are filled `depth` levels down.
    fn sample(g: &mut Gen, depth: u32) -> Self;
}
