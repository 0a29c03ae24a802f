//! The YAML parser's syntax errors, translated. libyaml reports problems
//! only as text, so this is the one place that reads its wording (and
//! serde_yaml's for its own limits); everything it returns is a typed
//! [`YamlError`]. Each case keeps the parser's position, moved to where the
//! problem is when the parser points elsewhere.

use super::{YamlError, YamlErrorKind};

/// The parser failed on `src` with `e`.
pub(super) fn error(src: &str, e: &serde_yaml::Error) -> YamlError {
    let raw = e.to_string();
    let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
    let at = |line, column, kind| YamlError { line, column, kind };
    if let Some(kind) = limit(&raw) {
        return at(line, column, kind);
    }
    if let Some((line, column)) = tab_in_indentation(src, line) {
        return at(line, column, YamlErrorKind::TabIndent);
    }
    let problem = raw.split(" at line ").next().unwrap_or(&raw).trim();
    let problem = match problem.split_once(": ") {
        // serde_yaml prefixes messages with the path; keep ours.
        Some((p, m)) if !p.contains(' ') && !m.is_empty() => m,
        _ => problem,
    };
    if problem.contains("control characters are not allowed") {
        let (line, column) = first_control_char(src).unwrap_or((line, column));
        return at(line, column, YamlErrorKind::ControlChars);
    }
    // libyaml says what it was parsing and where that started.
    let context = raw.find(", while ").map(|i| {
        let c = &raw[i + 2..];
        let (what, pos) = c.split_once(" at line ").unwrap_or((c, ""));
        (what.to_string(), pos.replace(" column ", ":"))
    });
    let char_here = src
        .lines()
        .nth(line.saturating_sub(1))
        .and_then(|l| l.chars().nth(column.saturating_sub(1)));
    at(line, column, kind_of(problem, context, char_here))
}

/// serde_yaml's own limits, which it may reach before the reader's.
fn limit(raw: &str) -> Option<YamlErrorKind> {
    if raw.contains("repetition limit exceeded") {
        Some(YamlErrorKind::TooManyNodes)
    } else if raw.contains("recursion limit exceeded") {
        Some(YamlErrorKind::TooDeep)
    } else if raw.contains("EOF while parsing") {
        Some(YamlErrorKind::Empty)
    } else {
        None
    }
}

/// What libyaml's `problem` means.
fn kind_of(
    problem: &str,
    context: Option<(String, String)>,
    char_here: Option<char>,
) -> YamlErrorKind {
    use YamlErrorKind::*;
    if problem.contains("did not find expected ',' or ']'")
        || problem.contains("did not find expected ',' or '}'")
    {
        let (open, close) = if problem.contains(']') {
            ('[', ']')
        } else {
            ('{', '}')
        };
        let opened = context.and_then(|(_, pos)| {
            pos.split_once(':')
                .map(|(l, c)| (l.to_string(), c.to_string()))
        });
        return Unclosed {
            open,
            close,
            opened,
        };
    }
    match problem {
        p if p.contains("found character that cannot start any token") => UnexpectedChar(char_here),
        p if p.contains("mapping values are not allowed in this context") => UnexpectedColon,
        p if p.contains("did not find expected key") => BadIndentation,
        p if p.contains("did not find expected '-' indicator") => BadListIndentation,
        p if p.contains("found unexpected end of stream") => UnexpectedEnd,
        p if p.contains("unknown anchor") => UnknownAnchor,
        p => Other {
            problem: p.to_string(),
            context,
        },
    }
}

/// A tab in the indentation of line `line` or an earlier one.
fn tab_in_indentation(src: &str, line: usize) -> Option<(usize, usize)> {
    for (i, l) in src.lines().enumerate().take(line) {
        let indent: String = l.chars().take_while(|c| *c == ' ' || *c == '\t').collect();
        if let Some(col) = indent.find('\t') {
            if l.trim().is_empty() {
                continue;
            }
            return Some((i + 1, col + 1));
        }
    }
    None
}

/// Where `key` appears the second time in the block mapping starting at
/// (`line`, `column`).
pub(super) fn second_key(
    src: &str,
    line: usize,
    column: usize,
    key: &str,
) -> Option<(usize, usize)> {
    let indent = column.checked_sub(1)?;
    let mut seen = 0;
    for (i, l) in src.lines().enumerate().skip(line.checked_sub(1)?) {
        let chars: Vec<char> = l.chars().collect();
        let lead = chars.iter().take_while(|c| **c == ' ').count();
        let content = l.trim();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        if i + 1 > line && lead < indent {
            break;
        }
        let head: String = chars.iter().take(indent).collect();
        let rest: String = chars.iter().skip(indent).collect();
        let bare = rest.strip_prefix(key);
        if head.chars().all(|c| c == ' ' || c == '-')
            && bare.is_some_and(|r| r.trim_start().starts_with(':'))
        {
            seen += 1;
            if seen == 2 {
                return Some((i + 1, column));
            }
        }
    }
    None
}

/// The 1-based position of the first control character, if any.
fn first_control_char(src: &str) -> Option<(usize, usize)> {
    for (i, line) in src.split('\n').enumerate() {
        for (j, c) in line.chars().enumerate() {
            if c.is_control() && c != '\t' && c != '\r' {
                return Some((i + 1, j + 1));
            }
        }
    }
    None
}
