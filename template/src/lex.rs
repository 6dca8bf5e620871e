//! Lexer: splits template text into text runs and the tokens inside actions,
//! applying trim markers (`{{-`, `-}}`) and dropping comments (`{{/* */}}`).

use crate::error::{Positions, TemplateError};

/// One token, with the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) kind: Tok,
    pub(crate) pos: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// Literal text between actions (already trimmed).
    Text(String),
    LeftDelim,
    RightDelim,
    /// A run of white space inside an action; it separates arguments.
    Space,
    Ident(String),
    /// `.name` (without the dot).
    Field(String),
    /// `$name` (with the `$`), or `$` alone.
    Variable(String),
    Dot,
    Str(String),
    /// A number or character constant, as written.
    Number(String),
    CharConst(i64),
    Bool(bool),
    Nil,
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
    Keyword(Keyword),
    Eof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keyword {
    If,
    Else,
    End,
    Range,
    With,
    Define,
    Template,
    Block,
    Break,
    Continue,
}

fn keyword(word: &str) -> Option<Tok> {
    let kw = match word {
        "if" => Keyword::If,
        "else" => Keyword::Else,
        "end" => Keyword::End,
        "range" => Keyword::Range,
        "with" => Keyword::With,
        "define" => Keyword::Define,
        "template" => Keyword::Template,
        "block" => Keyword::Block,
        "break" => Keyword::Break,
        "continue" => Keyword::Continue,
        "true" => return Some(Tok::Bool(true)),
        "false" => return Some(Tok::Bool(false)),
        "nil" => return Some(Tok::Nil),
        _ => return None,
    };
    Some(Tok::Keyword(kw))
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_word_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Lexes the whole text into tokens ending with `Eof`.
pub(crate) fn lex(
    text: &str,
    left: &str,
    right: &str,
    positions: &Positions,
) -> Result<Vec<Token>, TemplateError> {
    let mut lexer = Lexer {
        src: text,
        pos: 0,
        left,
        right,
        tokens: Vec::new(),
        trim_next_text: false,
        positions,
    };
    lexer.run()?;
    Ok(lexer.tokens)
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    left: &'a str,
    right: &'a str,
    tokens: Vec<Token>,
    trim_next_text: bool,
    positions: &'a Positions,
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn err(&self, pos: usize, message: impl Into<String>) -> TemplateError {
        self.positions.parse_error(pos, message)
    }

    fn push(&mut self, kind: Tok, pos: usize) {
        self.tokens.push(Token { kind, pos });
    }

    fn run(&mut self) -> Result<(), TemplateError> {
        loop {
            let start = self.pos;
            let Some(offset) = self.rest().find(self.left) else {
                self.push_text(start, self.src.len(), false);
                self.push(Tok::Eof, self.src.len());
                return Ok(());
            };
            let delim = start + offset;
            let after = &self.src[delim + self.left.len()..];
            let trim_left = has_left_trim(after);
            self.push_text(start, delim, trim_left);
            self.pos = delim + self.left.len();
            if trim_left {
                self.pos += 2;
            }
            if self.rest().starts_with("/*") {
                self.lex_comment(delim)?;
            } else {
                self.push(Tok::LeftDelim, delim);
                self.lex_action(delim)?;
            }
        }
    }

    fn push_text(&mut self, start: usize, end: usize, trim_right: bool) {
        let mut text = &self.src[start..end];
        let mut pos = start;
        if self.trim_next_text {
            let trimmed = text.trim_start_matches(is_space);
            pos += text.len() - trimmed.len();
            text = trimmed;
            self.trim_next_text = false;
        }
        if trim_right {
            text = text.trim_end_matches(is_space);
        }
        if !text.is_empty() {
            self.push(Tok::Text(text.to_string()), pos);
        }
    }

    /// After `{{/*`: skips to `*/` which must be followed by the right delimiter.
    fn lex_comment(&mut self, delim: usize) -> Result<(), TemplateError> {
        let body_start = self.pos + 2;
        let Some(end) = self.src[body_start..].find("*/") else {
            return Err(self.err(delim, "unclosed comment"));
        };
        self.pos = body_start + end + 2;
        if let Some(after_trim) = self.right_trim_len() {
            self.pos += after_trim;
            self.trim_next_text = true;
        } else if self.rest().starts_with(self.right) {
            self.pos += self.right.len();
        } else {
            return Err(self.err(delim, "comment ends before closing delimiter"));
        }
        Ok(())
    }

    /// Length of ` -}}` at the cursor, if present.
    fn right_trim_len(&self) -> Option<usize> {
        let rest = self.rest();
        let mut chars = rest.chars();
        let first = chars.next()?;
        if is_space(first) && rest[first.len_utf8()..].starts_with('-') {
            let after = first.len_utf8() + 1;
            if rest[after..].starts_with(self.right) {
                return Some(after + self.right.len());
            }
        }
        None
    }

    fn lex_action(&mut self, delim: usize) -> Result<(), TemplateError> {
        loop {
            if let Some(len) = self.right_trim_len() {
                self.push(Tok::RightDelim, self.pos);
                self.pos += len;
                self.trim_next_text = true;
                return Ok(());
            }
            if self.rest().starts_with(self.right) {
                self.push(Tok::RightDelim, self.pos);
                self.pos += self.right.len();
                return Ok(());
            }
            let Some(c) = self.rest().chars().next() else {
                return Err(self.err(delim, "unclosed action"));
            };
            self.lex_action_token(c)?;
        }
    }

    fn lex_action_token(&mut self, c: char) -> Result<(), TemplateError> {
        let start = self.pos;
        match c {
            c if is_space(c) => {
                let rest = self.rest();
                let mut len = 0;
                for ch in rest.chars() {
                    if !is_space(ch) || self.src[start + len..].starts_with(self.right) {
                        break;
                    }
                    // Stop before a ` -}}` so the trim marker is seen.
                    if len > 0 && self.is_trim_at(start + len) {
                        break;
                    }
                    len += ch.len_utf8();
                }
                self.pos += len.max(1);
                self.push(Tok::Space, start);
            }
            '|' => self.single(Tok::Pipe),
            '(' => self.single(Tok::LParen),
            ')' => self.single(Tok::RParen),
            ',' => self.single(Tok::Comma),
            '=' => self.single(Tok::Assign),
            ':' => {
                if !self.rest().starts_with(":=") {
                    return Err(self.err(start, "expected :="));
                }
                self.pos += 2;
                self.push(Tok::Declare, start);
            }
            '"' => self.lex_quoted(start)?,
            '`' => self.lex_raw(start)?,
            '\'' => self.lex_char(start)?,
            '$' => {
                let len = 1 + self.word_len(start + 1);
                self.pos += len;
                self.push(
                    Tok::Variable(self.src[start..start + len].to_string()),
                    start,
                );
            }
            '.' => self.lex_dot(start)?,
            '0'..='9' | '+' | '-' => self.lex_number(start)?,
            c if is_word_char(c) => {
                let len = self.word_len(start);
                self.pos += len;
                let word = &self.src[start..start + len];
                let tok = keyword(word).unwrap_or_else(|| Tok::Ident(word.to_string()));
                self.push(tok, start);
            }
            other => {
                return Err(self.err(
                    start,
                    format!("unrecognized character in action: {other:?}"),
                ))
            }
        }
        Ok(())
    }

    fn is_trim_at(&self, at: usize) -> bool {
        let rest = &self.src[at..];
        let mut chars = rest.chars();
        matches!(chars.next(), Some(c) if is_space(c))
            && rest[1..].starts_with('-')
            && rest[2..].starts_with(self.right)
    }

    fn single(&mut self, tok: Tok) {
        let start = self.pos;
        self.pos += 1;
        self.push(tok, start);
    }

    fn word_len(&self, from: usize) -> usize {
        self.src[from..]
            .chars()
            .take_while(|c| is_word_char(*c))
            .map(char::len_utf8)
            .sum()
    }

    fn lex_dot(&mut self, start: usize) -> Result<(), TemplateError> {
        let next = self.src[start + 1..].chars().next();
        match next {
            Some(c) if c.is_ascii_digit() => self.lex_number(start),
            Some(c) if is_word_char(c) => {
                let len = self.word_len(start + 1);
                self.pos = start + 1 + len;
                self.push(Tok::Field(self.src[start + 1..self.pos].to_string()), start);
                Ok(())
            }
            _ => {
                self.pos += 1;
                self.push(Tok::Dot, start);
                Ok(())
            }
        }
    }

    fn lex_number(&mut self, start: usize) -> Result<(), TemplateError> {
        let len = number_len(&self.src[start..]);
        let end = start + len;
        let follows = self.src[end..].chars().next();
        if len == 0 || matches!(follows, Some(c) if is_word_char(c) || c == '.') {
            let bad_end = end
                + self.src[end..]
                    .chars()
                    .take_while(|c| is_word_char(*c) || *c == '.')
                    .map(char::len_utf8)
                    .sum::<usize>();
            let bad = &self.src[start..bad_end.max(start + 1)];
            return Err(self.err(start, format!("bad number syntax: {bad:?}")));
        }
        self.pos = end;
        self.push(Tok::Number(self.src[start..end].to_string()), start);
        Ok(())
    }

    fn lex_quoted(&mut self, start: usize) -> Result<(), TemplateError> {
        let mut escaped = false;
        for (i, c) in self.src[start + 1..].char_indices() {
            match c {
                '\n' => break,
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    let end = start + 1 + i;
                    let raw = &self.src[start + 1..end];
                    let value = unescape(raw, '"').map_err(|m| self.err(start, m))?;
                    self.pos = end + 1;
                    self.push(Tok::Str(value), start);
                    return Ok(());
                }
                _ => escaped = false,
            }
        }
        Err(self.err(start, "unterminated quoted string"))
    }

    fn lex_raw(&mut self, start: usize) -> Result<(), TemplateError> {
        let Some(len) = self.src[start + 1..].find('`') else {
            return Err(self.err(start, "unterminated raw quoted string"));
        };
        let end = start + 1 + len;
        self.pos = end + 1;
        self.push(Tok::Str(self.src[start + 1..end].to_string()), start);
        Ok(())
    }

    fn lex_char(&mut self, start: usize) -> Result<(), TemplateError> {
        let mut escaped = false;
        for (i, c) in self.src[start + 1..].char_indices() {
            match c {
                '\n' => break,
                '\\' if !escaped => escaped = true,
                '\'' if !escaped => {
                    let end = start + 1 + i;
                    let value = unescape(&self.src[start + 1..end], '\'')
                        .map_err(|m| self.err(start, m))?;
                    let mut chars = value.chars();
                    let (Some(ch), None) = (chars.next(), chars.next()) else {
                        return Err(self.err(start, "malformed character constant"));
                    };
                    self.pos = end + 1;
                    self.push(Tok::CharConst(i64::from(u32::from(ch))), start);
                    return Ok(());
                }
                _ => escaped = false,
            }
        }
        Err(self.err(start, "unterminated character constant"))
    }
}

/// `{{- ` : a dash followed by white space right after the left delimiter.
fn has_left_trim(after_delim: &str) -> bool {
    let mut chars = after_delim.chars();
    chars.next() == Some('-') && matches!(chars.next(), Some(c) if is_space(c))
}

/// Length of the number literal at the start of `s` (sign, base prefix, digits,
/// fraction, exponent); 0 if there is none.
fn number_len(s: &str) -> usize {
    let bytes = s.as_bytes();
    let mut i = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let mut digits: &[u8] = b"0123456789_";
    let mut exp_chars: &[u8] = b"eE";
    if bytes.get(i) == Some(&b'0') {
        match bytes.get(i + 1) {
            Some(b'x' | b'X') => {
                i += 2;
                digits = b"0123456789abcdefABCDEF_";
                exp_chars = b"pP";
            }
            Some(b'o' | b'O') => {
                i += 2;
                digits = b"01234567_";
            }
            Some(b'b' | b'B') => {
                i += 2;
                digits = b"01_";
            }
            _ => {}
        }
    }
    let digits_start = i;
    while i < bytes.len() && digits.contains(&bytes[i]) {
        i += 1;
    }
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        while i < bytes.len() && digits.contains(&bytes[i]) {
            i += 1;
        }
    }
    if i == digits_start || (i == digits_start + 1 && bytes[digits_start] == b'.') {
        return 0;
    }
    if i < bytes.len() && exp_chars.contains(&bytes[i]) {
        let mut j = i + 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp_start = j;
        while j < bytes.len() && bytes[j].is_ascii_digit() {
            j += 1;
        }
        if j > exp_start {
            i = j;
        }
    }
    i
}

/// Go's `strconv.Unquote` escapes inside a quoted string or character constant.
fn unescape(raw: &str, quote: char) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(esc) = chars.next() else {
            return Err("unterminated escape sequence".to_string());
        };
        let simple = match esc {
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            '\\' => Some('\\'),
            c if c == quote => Some(c),
            _ => None,
        };
        if let Some(s) = simple {
            out.push(s);
            continue;
        }
        let (count, radix) = match esc {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => (2, 8),
            other => return Err(format!("unknown escape sequence: \\{other}")),
        };
        let mut digits = String::new();
        if radix == 8 {
            digits.push(esc);
        }
        for _ in 0..count {
            digits.push(chars.next().ok_or("short escape sequence")?);
        }
        let code = u32::from_str_radix(&digits, radix).map_err(|_| "invalid escape sequence")?;
        let ch = char::from_u32(code).ok_or("escape sequence is not a valid character")?;
        out.push(ch);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Tok> {
        let positions = Positions::new("t", text);
        lex(text, "{{", "}}", &positions)
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn trim_markers_eat_surrounding_white_space() {
        assert_eq!(
            kinds("a  {{- 3 -}}\n b"),
            vec![
                Tok::Text("a".into()),
                Tok::LeftDelim,
                Tok::Number("3".into()),
                Tok::RightDelim,
                Tok::Text("b".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn negative_number_is_not_a_trim_marker() {
        assert_eq!(
            kinds("a {{-3}}"),
            vec![
                Tok::Text("a ".into()),
                Tok::LeftDelim,
                Tok::Number("-3".into()),
                Tok::RightDelim,
                Tok::Eof
            ]
        );
    }

    #[test]
    fn numbers_of_every_base_are_lexed_whole() {
        for n in [
            "0x1F", "0o17", "0b101", "1_000", "1.5e3", "-2", ".5", "1e-3",
        ] {
            assert_eq!(number_len(n), n.len(), "{n}");
        }
    }

    #[test]
    fn escapes_follow_go() {
        assert_eq!(unescape(r"a\n\t\x41\u00e9\101", '"').unwrap(), "a\n\tAéA");
        assert!(unescape(r"\q", '"').is_err());
    }
}
