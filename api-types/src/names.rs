//! The rules for names that become store key segments and paths on nodes: job ids,
//! namespaces, group and task names (and, looser, a job's display name).
//!
//! Every such name is one segment of a key (`/nomos/jobs/<namespace>/<id>`) and of a task
//! directory on a node, so none may be empty, `.` or `..`, hold `/` or `\`, or hold a
//! character that does not show: controls (NUL included), zero-width and bidi controls, other
//! format characters, line separators, variation selectors, fillers, tags and U+FFFD (the mark
//! of a lossily decoded key). On top of that, following Nomad:
//! - a job id holds no whitespace;
//! - a namespace is 1 to 128 letters, digits and `-` (Nomad's `^[a-zA-Z0-9-]{1,128}$`);
//! - a group or task name may hold spaces, but not only spaces, nor at either end, nor any
//!   other whitespace (a no-break space looks like a space).

/// The longest job id, group or task name accepted: a path component holds 255 bytes, and
/// derived names (periodic children) add to it.
pub const MAX_NAME_BYTES: usize = 200;
/// The longest namespace (Nomad's).
pub const MAX_NAMESPACE_BYTES: usize = 128;

/// Whether `c` does not show: a control, format (zero-width, bidi), separator or filler
/// character, a variation selector or tag, or U+FFFD.
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFFF}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

/// `'\u{200b}'` for invisible characters, `'a'` for others: how a message shows `c`.
fn shown(c: char) -> String {
    if is_invisible(c) || c.is_whitespace() {
        format!("'\\u{{{:04x}}}'", c as u32)
    } else {
        format!("{c:?}")
    }
}

/// Checks a name that becomes one segment of a store key and of a path on a node.
pub fn check_segment(what: &str, name: &str) -> Result<(), String> {
    let why = if name.is_empty() {
        "must not be empty".to_string()
    } else if name == "." || name == ".." {
        "must not be \".\" or \"..\"".to_string()
    } else if name.contains('/') || name.contains('\\') {
        "must not contain '/' or '\\'".to_string()
    } else if let Some(c) = name.chars().find(|c| is_invisible(*c)) {
        format!(
            "must not contain control, zero-width or bidi characters, found {}",
            shown(c)
        )
    } else if name.len() > MAX_NAME_BYTES {
        format!(
            "must be at most {MAX_NAME_BYTES} bytes, found {}",
            name.len()
        )
    } else {
        return Ok(());
    };
    Err(format!("invalid {what} {name:?}: {why}"))
}

/// Checks a job id: a key segment without whitespace.
pub fn check_job_id(id: &str) -> Result<(), String> {
    check_segment("job id", id)?;
    match id.chars().find(|c| c.is_whitespace()) {
        Some(c) => Err(format!(
            "invalid job id {id:?}: must not contain whitespace, found {}",
            shown(c)
        )),
        None => Ok(()),
    }
}

/// Checks a group or task name (`what` says which): a key segment whose only whitespace is
/// inner spaces.
pub fn check_member_name(what: &str, name: &str) -> Result<(), String> {
    check_segment(what, name)?;
    let why = if name.trim().is_empty() {
        "must not be only whitespace".to_string()
    } else if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        "must not start or end with whitespace".to_string()
    } else if let Some(c) = name.chars().find(|c| c.is_whitespace() && *c != ' ') {
        format!(
            "may hold spaces but no other whitespace, found {}",
            shown(c)
        )
    } else {
        return Ok(());
    };
    Err(format!("invalid {what} {name:?}: {why}"))
}

/// Checks a namespace (or quota) name against Nomad's rule: 1 to 128 letters, digits and `-`.
pub fn check_namespace(what: &str, name: &str) -> Result<(), String> {
    check_segment(what, name)?;
    if name.len() > MAX_NAMESPACE_BYTES {
        return Err(format!(
            "invalid {what} {name:?}: must be 1 to {MAX_NAMESPACE_BYTES} bytes, found {}",
            name.len()
        ));
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        Some(c) => Err(format!(
            "invalid {what} {name:?}: holds {}; expected letters, digits and '-'",
            shown(c)
        )),
        None => Ok(()),
    }
}

/// Checks a name that is only shown (a job's `name`): anything visible, at most
/// [`MAX_NAME_BYTES`].
pub fn check_display_name(what: &str, name: &str) -> Result<(), String> {
    if let Some(c) = name.chars().find(|c| is_invisible(*c)) {
        return Err(format!(
            "invalid {what} {name:?}: must not contain control, zero-width or bidi characters, found {}",
            shown(c)
        ));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "invalid {what} {name:?}: must be at most {MAX_NAME_BYTES} bytes, found {}",
            name.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names every rule refuses, whatever the kind: (name, part of the message).
    const NEVER: &[(&str, &str)] = &[
        ("", "empty"),
        (".", "\"..\""),
        ("..", "\"..\""),
        ("a/b", "'/'"),
        ("evil/ns", "'/'"),
        ("../../etc", "'/'"),
        ("a\\b", "'\\'"),
        ("a\0b", "\\u{0000}"),
        ("a\nb", "\\u{000a}"),
        ("a\u{7f}", "\\u{007f}"),
        ("we\u{200B}b", "\\u{200b}"),
        ("we\u{200D}b", "\\u{200d}"),
        ("\u{FEFF}web", "\\u{feff}"),
        ("web\u{202E}gpj", "\\u{202e}"),
        ("web\u{2066}x\u{2069}", "\\u{2066}"),
        ("web\u{00AD}", "\\u{00ad}"),
        ("web\u{2028}", "\\u{2028}"),
        ("web\u{FE0F}", "\\u{fe0f}"),
        ("web\u{E0041}", "\\u{e0041}"),
        ("web\u{FFFD}", "\\u{fffd}"),
        ("\u{3164}", "\\u{3164}"),
    ];

    #[test]
    fn no_kind_of_name_takes_empty_dots_slashes_or_invisible_characters() {
        for (name, want) in NEVER {
            for result in [
                check_job_id(name),
                check_member_name("group name", name),
                check_member_name("task name", name),
                check_namespace("namespace", name),
            ] {
                let e = result.expect_err(name);
                assert!(e.contains(want), "{name:?}: {e}");
            }
        }
    }

    #[test]
    fn job_ids_hold_no_whitespace() {
        for ok in [
            "web",
            "web.v2",
            "..x",
            "a-b_c",
            "périodique",
            "web-periodic-1700000000",
        ] {
            assert_eq!(check_job_id(ok), Ok(()), "{ok:?}");
        }
        let long = "x".repeat(201);
        for (bad, want) in [
            ("my job", "whitespace"),
            (" ", "whitespace"),
            ("web\u{00A0}", "\\u{00a0}"),
            ("web\u{3000}", "\\u{3000}"),
            (long.as_str(), "at most 200 bytes"),
        ] {
            let e = check_job_id(bad).expect_err(bad);
            assert!(e.contains(want), "{bad:?}: {e}");
        }
        assert_eq!(check_job_id(&"x".repeat(200)), Ok(()));
    }

    #[test]
    fn group_and_task_names_may_hold_inner_spaces_only() {
        for ok in ["web", "my task", "web.v2", "..x", "api-1_b", "tâche"] {
            assert_eq!(check_member_name("task name", ok), Ok(()), "{ok:?}");
        }
        for (bad, want) in [
            ("   ", "only whitespace"),
            (" web", "start or end"),
            ("web ", "start or end"),
            ("my\u{00A0}task", "\\u{00a0}"),
            ("my\u{2003}task", "\\u{2003}"),
        ] {
            let e = check_member_name("task name", bad).expect_err(bad);
            assert!(e.contains(want), "{bad:?}: {e}");
        }
    }

    #[test]
    fn namespaces_follow_nomads_rule() {
        for ok in ["default", "team-a", "A1", &"x".repeat(128)] {
            assert_eq!(check_namespace("namespace", ok), Ok(()), "{ok:?}");
        }
        for (bad, want) in [
            ("team_a", "'_'"),
            ("team a", "\\u{0020}"),
            ("team.a", "'.'"),
            ("équipe", "'é'"),
            ("*", "'*'"),
            (&"x".repeat(129), "1 to 128"),
        ] {
            let e = check_namespace("namespace", bad).expect_err(bad);
            assert!(e.contains(want), "{bad:?}: {e}");
        }
    }

    #[test]
    fn display_names_take_anything_visible() {
        for ok in ["", "My Web App", "web/v2", "..", "日本語"] {
            assert_eq!(check_display_name("job name", ok), Ok(()), "{ok:?}");
        }
        for bad in ["a\0", "a\u{200B}", "a\u{202E}", &"x".repeat(201)] {
            assert!(check_display_name("job name", bad).is_err(), "{bad:?}");
        }
    }
}
