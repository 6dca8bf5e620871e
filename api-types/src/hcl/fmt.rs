//! `nctl fmt`: canonical layout for HCL job files, keeping every comment. Lines are
//! re-indented by two spaces per nesting level, trailing blanks go, runs of blank lines shrink
//! to one, and the `=` of consecutive one-line attributes line up. Only spaces and tabs at the
//! start of lines, before `=`, and at the end of lines change: heredoc bodies, block comments
//! and string contents are copied as they are.

use super::lex::heredoc_delimiter;

/// Scanner state carried from one line to the next.
#[derive(Default)]
struct State {
    depth: usize,
    /// The delimiter of the heredoc whose body is being copied.
    heredoc: Option<String>,
    block_comment: bool,
}

/// What one line looked like to the scanner.
struct LineInfo {
    /// Closing brackets at the start of the line (they dedent the line itself).
    leading_closers: usize,
    /// Byte index of a top-level `=` that makes this an `attr = value` line.
    assign_at: Option<usize>,
}

fn scan(line: &str, st: &mut State) -> LineInfo {
    let b = line.as_bytes();
    let mut info = LineInfo {
        leading_closers: 0,
        assign_at: None,
    };
    let mut i = 0;
    let mut at_start = true;
    let start_depth = st.depth;
    while i < b.len() {
        let c = b[i];
        if st.block_comment {
            if c == b'*' && b.get(i + 1) == Some(&b'/') {
                st.block_comment = false;
                i += 2;
                continue;
            }
            i += 1;
            continue;
        }
        match c {
            b' ' | b'\t' => {}
            b'#' => break,
            b'/' if b.get(i + 1) == Some(&b'/') => break,
            b'/' if b.get(i + 1) == Some(&b'*') => {
                st.block_comment = true;
                i += 2;
                continue;
            }
            b'"' => {
                at_start = false;
                i += 1;
                let mut interp = 0usize;
                while i < b.len() {
                    match b[i] {
                        b'\\' => i += 1,
                        b'$' | b'%' if b.get(i + 1) == Some(&b'{') => {
                            interp += 1;
                            i += 1;
                        }
                        b'}' if interp > 0 => interp -= 1,
                        b'"' if interp == 0 => break,
                        _ => {}
                    }
                    i += 1;
                }
            }
            b'<' if b.get(i + 1) == Some(&b'<') => {
                at_start = false;
                let delim = heredoc_delimiter(b, i);
                i = delim.end;
                if !delim.is_empty() {
                    st.heredoc = Some(line[delim].to_string());
                }
                continue;
            }
            b'{' | b'[' | b'(' => {
                at_start = false;
                st.depth += 1;
            }
            b'}' | b']' | b')' => {
                if at_start {
                    info.leading_closers += 1;
                }
                st.depth = st.depth.saturating_sub(1);
            }
            b'=' if st.depth == start_depth
                && info.assign_at.is_none()
                && b.get(i + 1) != Some(&b'=')
                && i > 0
                && !matches!(b[i - 1], b'!' | b'<' | b'>' | b'=') =>
            {
                info.assign_at = Some(i);
                at_start = false;
            }
            _ => at_start = false,
        }
        i += 1;
    }
    info
}

/// Formats an HCL job file; returns the text unchanged if it holds nothing to format.
pub fn format_hcl(source: &str) -> String {
    struct Out {
        text: String,
        assign: Option<(usize, usize)>,
        depth: usize,
    }
    let mut st = State::default();
    let mut lines: Vec<Out> = Vec::new();
    let mut blank_run = 0;
    for raw in source.lines() {
        if let Some(delim) = &st.heredoc {
            let done = raw.trim() == delim;
            if done {
                st.heredoc = None;
            }
            lines.push(Out {
                text: raw.to_string(),
                assign: None,
                depth: usize::MAX,
            });
            continue;
        }
        if st.block_comment {
            scan(raw, &mut st);
            lines.push(Out {
                text: raw.trim_end().to_string(),
                assign: None,
                depth: usize::MAX,
            });
            continue;
        }
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            blank_run += 1;
            if blank_run == 1 && !lines.is_empty() {
                lines.push(Out {
                    text: String::new(),
                    assign: None,
                    depth: usize::MAX,
                });
            }
            continue;
        }
        blank_run = 0;
        let depth_before = st.depth;
        let info = scan(trimmed, &mut st);
        let depth = depth_before.saturating_sub(info.leading_closers);
        let mut text = "  ".repeat(depth);
        text.push_str(trimmed);
        let assign = match info.assign_at {
            // Only one-line attributes are aligned (a value that opens a block breaks the run).
            Some(at) if st.depth == depth_before && st.heredoc.is_none() => {
                let key = trimmed[..at].trim_end();
                let rest = trimmed[at + 1..].trim_start();
                text = format!("{}{key} = {rest}", "  ".repeat(depth));
                Some((depth * 2 + key.len(), depth * 2 + key.chars().count()))
            }
            _ => None,
        };
        lines.push(Out {
            text,
            assign,
            depth,
        });
    }
    while lines.last().is_some_and(|l| l.text.is_empty()) {
        lines.pop();
    }
    // Align `=` in runs of consecutive attributes at one depth.
    let mut i = 0;
    while i < lines.len() {
        if lines[i].assign.is_none() {
            i += 1;
            continue;
        }
        let depth = lines[i].depth;
        let mut j = i;
        while j < lines.len() && lines[j].assign.is_some() && lines[j].depth == depth {
            j += 1;
        }
        let width = lines[i..j]
            .iter()
            .filter_map(|l| l.assign.map(|a| a.1))
            .max()
            .unwrap_or(0);
        for line in &mut lines[i..j] {
            if let Some((byte_end, chars)) = line.assign {
                let pad = " ".repeat(width - chars);
                line.text.insert_str(byte_end, &pad);
            }
        }
        i = j;
    }
    let mut out: String = lines
        .iter()
        .map(|l| l.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::format_hcl;

    #[test]
    fn formats_indentation_alignment_and_blank_lines() {
        let input = "job \"x\" {\n    datacenters=[\"dc1\"]\n  type = \"batch\"   \n\n\n   group \"g\" {\n count = 1\n  # a comment\n    task \"t\" {\n driver = \"raw_exec\"\n      config {\n        args = [\n\"a\",\n  ]\n  }\n  }\n}\n}\n\n";
        let expected = "job \"x\" {\n  datacenters = [\"dc1\"]\n  type        = \"batch\"\n\n  group \"g\" {\n    count = 1\n    # a comment\n    task \"t\" {\n      driver = \"raw_exec\"\n      config {\n        args = [\n          \"a\",\n        ]\n      }\n    }\n  }\n}\n";
        assert_eq!(format_hcl(input), expected);
        assert_eq!(format_hcl(expected), expected, "formatting is idempotent");
    }

    #[test]
    fn heredocs_comments_and_strings_are_copied_as_they_are() {
        let input = "job \"x\" {\n  meta = { a = \"x  =  y { [\" }\n  /* block\n     comment */\n  t = <<EOF\n   keep   this\n{\nEOF\n  u = 1 # c\n}\n";
        assert_eq!(format_hcl(input), input);
    }
}
