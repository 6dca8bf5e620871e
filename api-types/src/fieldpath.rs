//! Canonical field paths (`groups[0].tasks[1].driver`): joining fields and indexes onto a
//! path, and [`PosMap`], which maps paths to the source positions they came from. Front ends
//! fill a `PosMap`; validation names what it finds by path; the pipeline turns one into the
//! other.

use std::collections::HashMap;

use crate::diag::Pos;

/// Source positions of canonical field paths, e.g. `groups[0].tasks[1].driver`.
#[derive(Debug, Clone, Default)]
pub struct PosMap(pub HashMap<String, Pos>);

impl PosMap {
    pub fn insert(&mut self, path: impl Into<String>, pos: Pos) {
        self.0.entry(path.into()).or_insert(pos);
    }

    pub fn set(&mut self, path: impl Into<String>, pos: Pos) {
        self.0.insert(path.into(), pos);
    }

    /// The position of `path`, or of its closest ancestor that has one.
    pub fn lookup(&self, path: &str) -> Pos {
        let mut p = path;
        loop {
            if let Some(pos) = self.0.get(p) {
                return *pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return self.0.get("").copied().unwrap_or_default(),
            }
        }
    }
}

/// Joins a field onto a path.
pub(crate) fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// Joins an index onto a path.
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pos_map_falls_back_to_the_closest_ancestor() {
        let mut m = PosMap::default();
        m.insert("groups[0]", Pos::new(3, 3));
        m.insert("groups[0].tasks[1]", Pos::new(9, 5));
        assert_eq!(m.lookup("groups[0].tasks[1].driver"), Pos::new(9, 5));
        assert_eq!(m.lookup("groups[0].tasks[2].driver"), Pos::new(3, 3));
        assert_eq!(m.lookup("datacenters"), Pos::default());
    }
}
