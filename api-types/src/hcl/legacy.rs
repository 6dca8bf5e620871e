//! HCL1-era syntax that HCL2 rejects, rewritten byte for byte (so every offset, and therefore
//! every reported line and column, still points into the user's original file):
//! commas after attributes inside blocks become newlines, and quoted attribute names in blocks
//! (`"FOO" = "bar"`) lose their quotes when they are identifiers.

use super::lex::heredoc_delimiter;

#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    Block,
    Object,
    Bracket,
    Paren,
}

/// Returns the rewritten text, or `None` when there was nothing to rewrite.
pub(crate) fn rewrite_hcl1(src: &str) -> Option<String> {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let mut stack: Vec<Ctx> = Vec::new();
    let mut last_sig: u8 = b'\n';
    let mut changed = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' => {
                let at_item_start = matches!(last_sig, b'\n' | b'{' | b',')
                    && matches!(stack.last(), Some(Ctx::Block));
                let end = string_end(b, i);
                // HCL1 allowed quoted attribute names in blocks (`"FOO" = "bar"`): when the
                // name is an identifier, blank the quotes (same length, same offsets).
                if at_item_start && is_quoted_attribute_name(b, i, end) {
                    out[i] = b' ';
                    out[end] = b' ';
                    changed = true;
                }
                i = end;
                last_sig = b'"';
            }
            b'#' => {
                i = line_end(b, i);
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                i = line_end(b, i);
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = block_comment_end(b, i);
                continue;
            }
            b'<' if b.get(i + 1) == Some(&b'<') => {
                match heredoc_end(src, i) {
                    Some(end) => {
                        i = end;
                        last_sig = b'"';
                    }
                    None => i += 2,
                }
                continue;
            }
            b'{' => {
                stack.push(brace_ctx(last_sig, stack.last()));
                last_sig = c;
            }
            b'[' => {
                stack.push(Ctx::Bracket);
                last_sig = c;
            }
            b'(' => {
                stack.push(Ctx::Paren);
                last_sig = c;
            }
            b'}' | b']' | b')' => {
                stack.pop();
                last_sig = c;
            }
            b',' if matches!(stack.last(), Some(Ctx::Block)) => {
                out[i] = b'\n';
                changed = true;
                last_sig = b'\n';
            }
            b' ' | b'\t' | b'\r' => {}
            _ => last_sig = c,
        }
        i += 1;
    }
    if changed {
        String::from_utf8(out).ok()
    } else {
        None
    }
}

/// Where the quoted string opening at `start` ends: its closing quote, the end of its line
/// (an unterminated string), or past the end of the text. `${ ... }` inside it may hold
/// quotes of its own.
fn string_end(b: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    let mut depth = 0usize;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth > 0 => depth -= 1,
            b'"' if depth == 0 => break,
            b'\n' if depth == 0 => break,
            _ => {}
        }
        i += 1;
    }
    i
}

/// Whether the string from `start` to its closing quote at `end` is an identifier used as an
/// attribute name: followed by `=` (not `==`).
fn is_quoted_attribute_name(b: &[u8], start: usize, end: usize) -> bool {
    if end >= b.len() || b[end] != b'"' {
        return false;
    }
    let key = &b[start + 1..end];
    let rest = &b[end + 1..];
    let followed_by_eq = rest.iter().find(|c| !matches!(c, b' ' | b'\t')) == Some(&b'=')
        && rest.iter().skip_while(|c| matches!(c, b' ' | b'\t')).nth(1) != Some(&b'=');
    let ident = !key.is_empty()
        && !key[0].is_ascii_digit()
        && key
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-');
    followed_by_eq && ident
}

/// The newline that ends the comment starting at `i` (or the end of the text).
fn line_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i] != b'\n' {
        i += 1;
    }
    i
}

/// Just past the `*/` that closes the comment opening at `i`.
fn block_comment_end(b: &[u8], mut i: usize) -> usize {
    i += 2;
    while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
        i += 1;
    }
    i + 2
}

/// The end of the line holding only the delimiter of the heredoc opening at `i` (`<<EOF` or
/// `<<-EOF`), or of the text; `None` when no delimiter follows the `<<`.
fn heredoc_end(src: &str, i: usize) -> Option<usize> {
    let b = src.as_bytes();
    let delim_at = heredoc_delimiter(b, i);
    let mut k = delim_at.end;
    let delim = &src[delim_at];
    if delim.is_empty() {
        return None;
    }
    loop {
        while k < b.len() && b[k] != b'\n' {
            k += 1;
        }
        if k >= b.len() {
            break;
        }
        k += 1;
        let line_end = src[k..].find('\n').map(|n| k + n).unwrap_or(b.len());
        if src[k..line_end].trim() == delim {
            k = line_end;
            break;
        }
    }
    Some(k)
}

/// What a `{` opens: an object when it follows `=`, `:`, `,`, `(`, `[` or `?` or sits inside
/// an expression; else a block.
fn brace_ctx(last_sig: u8, enclosing: Option<&Ctx>) -> Ctx {
    if matches!(last_sig, b'=' | b':' | b',' | b'(' | b'[' | b'?')
        || matches!(enclosing, Some(Ctx::Object | Ctx::Bracket | Ctx::Paren))
    {
        Ctx::Object
    } else {
        Ctx::Block
    }
}

#[cfg(test)]
mod tests {
    use super::rewrite_hcl1;

    #[test]
    fn hcl1_rewrites_keep_every_byte_offset() {
        let cases = [
            // (input, expected output or None when nothing changes)
            (
                "a {\n  x = 1,\n  y = 2,\n}\n",
                Some("a {\n  x = 1\n\n  y = 2\n\n}\n"),
            ),
            (
                "a {\n  \"FOO\" = \"bar\"\n}\n",
                Some("a {\n   FOO  = \"bar\"\n}\n"),
            ),
            // Commas inside lists, objects and strings stay.
            (
                "a {\n  x = [1, 2]\n  y = { p = 1, q = 2 }\n  z = \"a,b\"\n}\n",
                None,
            ),
            // Quoted keys that are not identifiers stay quoted (and HCL2 will reject them).
            ("a {\n  \"com.x\" = 1\n}\n", None),
            // Heredocs and comments are skipped.
            ("a {\n  x = <<EOF\nq, r\nEOF\n  # c, d\n}\n", None),
            ("a {\n  x = \"${f(1, 2)}\"\n}\n", None),
        ];
        for (input, expected) in cases {
            let out = rewrite_hcl1(input);
            assert_eq!(out.as_deref(), expected, "{input:?}");
            if let Some(o) = out {
                assert_eq!(o.len(), input.len());
            }
        }
    }
}
