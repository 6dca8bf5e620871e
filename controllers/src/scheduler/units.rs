//! Quantities with units in constraint values, as Nomad reads device attributes: `16384 MiB`
//! and `16 GiB` compare as the same amount of bytes. Bytes (base 2 and base 10), byte rates,
//! hertz and watts are known; only quantities of one base compare.

/// What a unit measures; values of different bases never compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    Bytes,
    ByteRate,
    Hertz,
    Watts,
}

const KI: f64 = 1024.0;

/// Each unit with its base and its factor to the base's smallest unit.
const UNITS: &[(&str, Base, f64)] = &[
    ("B", Base::Bytes, 1.0),
    ("KiB", Base::Bytes, KI),
    ("MiB", Base::Bytes, KI * KI),
    ("GiB", Base::Bytes, KI * KI * KI),
    ("TiB", Base::Bytes, KI * KI * KI * KI),
    ("PiB", Base::Bytes, KI * KI * KI * KI * KI),
    ("EiB", Base::Bytes, KI * KI * KI * KI * KI * KI),
    ("kB", Base::Bytes, 1e3),
    ("KB", Base::Bytes, 1e3),
    ("MB", Base::Bytes, 1e6),
    ("GB", Base::Bytes, 1e9),
    ("TB", Base::Bytes, 1e12),
    ("PB", Base::Bytes, 1e15),
    ("EB", Base::Bytes, 1e18),
    ("B/s", Base::ByteRate, 1.0),
    ("KiB/s", Base::ByteRate, KI),
    ("MiB/s", Base::ByteRate, KI * KI),
    ("GiB/s", Base::ByteRate, KI * KI * KI),
    ("TiB/s", Base::ByteRate, KI * KI * KI * KI),
    ("PiB/s", Base::ByteRate, KI * KI * KI * KI * KI),
    ("EiB/s", Base::ByteRate, KI * KI * KI * KI * KI * KI),
    ("kB/s", Base::ByteRate, 1e3),
    ("KB/s", Base::ByteRate, 1e3),
    ("MB/s", Base::ByteRate, 1e6),
    ("GB/s", Base::ByteRate, 1e9),
    ("TB/s", Base::ByteRate, 1e12),
    ("PB/s", Base::ByteRate, 1e15),
    ("EB/s", Base::ByteRate, 1e18),
    ("Hz", Base::Hertz, 1.0),
    ("MHz", Base::Hertz, 1e6),
    ("GHz", Base::Hertz, 1e9),
    ("mW", Base::Watts, 1e-3),
    ("W", Base::Watts, 1.0),
    ("kW", Base::Watts, 1e3),
    ("MW", Base::Watts, 1e6),
    ("GW", Base::Watts, 1e9),
];

/// A number with an optional unit (`4 GiB`, `4GiB`, `4096`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantity {
    pub value: f64,
    /// The unit's base and factor; `None` for a bare number.
    pub unit: Option<(Base, f64)>,
}

impl Quantity {
    /// `None` when the text is not a number, or names a unit not in the table.
    pub fn parse(text: &str) -> Option<Quantity> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
            .unwrap_or(t.len());
        let value: f64 = t[..split].trim().parse().ok()?;
        let unit_text = t[split..].trim();
        if unit_text.is_empty() {
            return Some(Quantity { value, unit: None });
        }
        let &(_, base, factor) = UNITS.iter().find(|(name, _, _)| *name == unit_text)?;
        Some(Quantity {
            value,
            unit: Some((base, factor)),
        })
    }
}

/// Both sides as numbers of one base, when at least one has a unit: a bare number takes the
/// other side's unit (`${device.attr.memory} >= 4096` against `16384 MiB`). `None` when
/// neither has a unit, either is not a quantity, or the bases differ.
pub fn comparable(lhs: &str, rhs: &str) -> Option<(f64, f64)> {
    let (a, b) = (Quantity::parse(lhs)?, Quantity::parse(rhs)?);
    let (fa, fb) = match (a.unit, b.unit) {
        (None, None) => return None,
        (Some((ba, fa)), Some((bb, fb))) if ba == bb => (fa, fb),
        (Some(_), Some(_)) => return None,
        (Some((_, f)), None) | (None, Some((_, f))) => (f, f),
    };
    Some((a.value * fa, b.value * fb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_of_one_base_compare_after_conversion() {
        type Case = (&'static str, &'static str, Option<(f64, f64)>);
        let cases: &[Case] = &[
            (
                "16384 MiB",
                "16 GiB",
                Some((16.0 * KI * KI * KI, 16.0 * KI * KI * KI)),
            ),
            (
                "4096 MiB",
                "3.5 GiB",
                Some((4.0 * KI * KI * KI, 3.5 * KI * KI * KI)),
            ),
            ("1 GB", "1000 MB", Some((1e9, 1e9))),
            ("1 KB", "1 kB", Some((1e3, 1e3))),
            ("2GHz", "1500 MHz", Some((2e9, 1.5e9))),
            ("300 W", "0.25 kW", Some((300.0, 250.0))),
            (
                "16384 MiB",
                "4096",
                Some((16384.0 * KI * KI, 4096.0 * KI * KI)),
            ),
            // Neither has a unit: plain numbers are the constraint's own business.
            ("4", "5", None),
            // Different bases never compare.
            ("1 GiB", "1 GHz", None),
            ("1 GiB", "1 GiB/s", None),
            // Not quantities.
            ("Tesla T4", "4 GiB", None),
            ("4 furlongs", "4 GiB", None),
            ("", "4 GiB", None),
        ];
        for (lhs, rhs, want) in cases {
            assert_eq!(comparable(lhs, rhs), *want, "{lhs} vs {rhs}");
        }
    }
}
