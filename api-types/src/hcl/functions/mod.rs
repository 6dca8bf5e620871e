//! Nomad's HCL2 function library, one family per file: [`text`], [`collections`] (lists),
//! [`maps`], [`convert`], [`numbers`], [`encoding`] and the less common ones in [`more`]. [`call`] finds a function's family; an
//! unknown name gets a "did you mean" hint. (`try` and `can` are special forms of the
//! evaluator: their arguments are evaluated there.)

mod collections;
mod convert;
mod encoding;
mod maps;
mod more;
mod numbers;
mod text;

use serde_json::Value;

use crate::frontend::ParseOptions;

/// A family of functions: its names, and the call that answers for them.
type Family = (
    &'static [&'static str],
    fn(&str, &[Value], &ParseOptions) -> Result<Value, String>,
);

const FAMILIES: [Family; 7] = [
    (text::NAMES, text::call),
    (collections::NAMES, collections::call),
    (maps::NAMES, maps::call),
    (convert::NAMES, convert::call),
    (numbers::NAMES, numbers::call),
    (encoding::NAMES, encoding::call),
    (more::NAMES, more::call),
];

/// The functions the evaluator itself answers for.
const SPECIAL_FORMS: [&str; 2] = ["try", "can"];

/// Every function a job file may call, special forms included.
pub fn names() -> impl Iterator<Item = &'static str> {
    FAMILIES
        .iter()
        .flat_map(|(names, _)| names.iter().copied())
        .chain(SPECIAL_FORMS)
}

/// Calls one of the supported HCL functions.
pub(crate) fn call(name: &str, args: Vec<Value>, options: &ParseOptions) -> Result<Value, String> {
    if let Some((_, f)) = FAMILIES.iter().find(|(names, _)| names.contains(&name)) {
        return f(name, &args, options);
    }
    let hint = crate::diag::did_you_mean(name, names())
        .map(|s| format!(" (did you mean \"{s}\"?)"))
        .unwrap_or_default();
    Err(format!("unknown function{hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_belongs_to_one_family() {
        let mut seen = std::collections::BTreeSet::new();
        for (names, _) in FAMILIES {
            for n in names {
                assert!(seen.insert(*n), "{n} is in two families");
            }
        }
        assert!(seen.len() > 70, "{} functions", seen.len());
    }

    #[test]
    fn an_unknown_function_names_the_nearest_known_one() {
        let e = call("uper", vec![Value::from("x")], &ParseOptions::default()).unwrap_err();
        assert_eq!(e, "unknown function (did you mean \"upper\"?)");
    }
}
