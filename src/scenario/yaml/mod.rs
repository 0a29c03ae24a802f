//! The YAML guard: the only code that knows the YAML library (`serde_yaml`).
//!
//! [`read`] turns scenario text into a [`Node`] tree, refusing on the way
//! what a scenario never needs and what could hurt the reader: deep nesting,
//! alias bombs, duplicate keys, several documents, bad `<<` merges. Every
//! refusal is a [`YamlError`] with a position; the parser's own syntax
//! errors (tabs in indentation, control characters, unclosed brackets...)
//! are translated in `syntax.rs`. Positions of
//! nodes for later messages come from `locate.rs`. Swapping the YAML library
//! means rewriting this module and nothing else.

mod build;
mod locate;
mod syntax;

pub(crate) use locate::{locate, Seg, YPath};

use super::node::Node;
use build::{apply_merge, Builder, Limits, Refusal, MAX_DEPTH, MAX_NODES};
use serde::de::DeserializeSeed;

/// Why the text is not a YAML document flatline reads, and where.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct YamlError {
    /// 1-based.
    pub line: usize,
    /// 1-based.
    pub column: usize,
    pub kind: YamlErrorKind,
}

/// What is wrong with the text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum YamlErrorKind {
    /// Nothing but comments and blank lines.
    Empty,
    /// More than [`MAX_FLOW_DEPTH`] `[`/`{` levels.
    TooDeepFlow,
    /// More than [`MAX_DEPTH`] levels.
    TooDeep,
    /// More than [`MAX_NODES`] values, aliases expanded.
    TooManyNodes,
    MultipleDocuments,
    DuplicateKey(String),
    ControlChars,
    TabIndent,
    /// `<<` given something other than mappings (what was expected and
    /// found).
    BadMerge(&'static str),
    /// A flow collection not closed where expected.
    Unclosed {
        open: char,
        close: char,
        /// Where it was opened, if the parser said.
        opened: Option<(String, String)>,
    },
    UnexpectedChar(Option<char>),
    UnexpectedColon,
    BadIndentation,
    BadListIndentation,
    UnexpectedEnd,
    UnknownAnchor,
    /// Anything else the parser reports: its problem, and what it was
    /// parsing with where that started.
    Other {
        problem: String,
        context: Option<(String, String)>,
    },
}

impl YamlErrorKind {
    /// The message, one line.
    pub fn message(&self) -> String {
        use YamlErrorKind::*;
        match self {
            Empty => "the scenario file is empty".into(),
            TooDeepFlow => format!(
                "the document is nested too deeply (more than {MAX_FLOW_DEPTH} `[`/`{{` levels)"
            ),
            TooDeep => format!("the document is nested too deeply (more than {MAX_DEPTH} levels)"),
            TooManyNodes => format!("the document holds more than {MAX_NODES} values"),
            MultipleDocuments => "the file holds more than one YAML document".into(),
            DuplicateKey(k) => format!("`{k}` is given twice in the same mapping"),
            ControlChars => "the file contains control characters".into(),
            TabIndent => "tab character in indentation".into(),
            BadMerge(what) => format!("bad `<<` merge: {what}"),
            Unclosed {
                open,
                close,
                opened,
            } => {
                let opened = opened
                    .as_ref()
                    .map(|(l, c)| format!(" (opened at line {l}, column {c})"))
                    .unwrap_or_default();
                format!("unclosed `{open}`{opened}: expected `,` or `{close}`")
            }
            UnexpectedChar(Some(c)) => format!("unexpected character `{}`", c.escape_debug()),
            UnexpectedChar(None) => "unexpected character".into(),
            UnexpectedColon => "unexpected `:`".into(),
            BadIndentation => "bad indentation or a line that is not `key: value`".into(),
            BadListIndentation => "bad indentation in a list".into(),
            UnexpectedEnd => "the file ends inside a quoted string or a `[`/`{` block".into(),
            UnknownAnchor => "alias to an unknown anchor".into(),
            Other {
                problem,
                context: Some((what, pos)),
            } if !pos.is_empty() => format!(
                "invalid YAML: {problem}, {what} that starts at line {}",
                pos.replace(':', ", column ")
            ),
            Other { problem, .. } => format!("invalid YAML: {problem}"),
        }
    }

    /// What was expected, or how to fix it.
    pub fn hint(&self) -> Option<&'static str> {
        use YamlErrorKind::*;
        Some(match self {
            Empty => "expected a mapping with `name`, `description` and `duration`",
            TooManyNodes => {
                "expected a small file (an alias `*name` counts its values each time it is used)"
            }
            MultipleDocuments => "expected one scenario per file",
            DuplicateKey(_) => "expected each field once",
            ControlChars => "expected a YAML scenario; is it a binary file?",
            TabIndent => "YAML indents with spaces only",
            BadMerge(_) => "expected `<<: *anchor` naming a mapping, or a list of them",
            Unclosed { .. } => "quote values that contain `,`, `[`, `]`, `{` or `}`",
            UnexpectedChar(_) => "quote values that start with `@`, `` ` ``, `%` or `|`",
            UnexpectedColon => "check the indentation, or quote values that contain `: `",
            BadIndentation => "expected `key: value` aligned with the keys above",
            BadListIndentation => "expected `- ` items aligned with the ones above",
            UnexpectedEnd => "expected the closing quote or bracket",
            UnknownAnchor => "expected `&name` defined before `*name`",
            TooDeepFlow | TooDeep | Other { .. } => return None,
        })
    }
}

/// Reads `src` as one YAML document.
pub(crate) fn read(src: &str) -> Result<Node, YamlError> {
    let at = |line, column, kind| YamlError { line, column, kind };
    if only_comments(src) {
        return Err(at(1, 1, YamlErrorKind::Empty));
    }
    // libyaml spends time proportional to the flow depth on every token:
    // refuse deep `[`/`{` nesting before it sees them.
    if let Some((line, column)) = too_deep_flow(src) {
        return Err(at(line, column, YamlErrorKind::TooDeepFlow));
    }
    let (mut node, more) = match first_document(src, false) {
        Err(
            e @ YamlError {
                kind: YamlErrorKind::DuplicateKey(_),
                ..
            },
        ) => {
            // A syntax error further on says more than the duplicate.
            first_document(src, true)?;
            return Err(e);
        }
        other => other?,
    };
    if more {
        let second = src
            .lines()
            .enumerate()
            .filter(|(_, l)| l.starts_with("---"))
            .map(|(i, _)| i + 1)
            .last()
            .unwrap_or(1);
        return Err(at(second, 1, YamlErrorKind::MultipleDocuments));
    }
    // `<<: *anchor` merge keys, so faults can share settings.
    apply_merge(&mut node).map_err(|found| {
        let line = src
            .lines()
            .position(|l| l.contains("<<"))
            .map_or(1, |i| i + 1);
        let column = src
            .lines()
            .nth(line - 1)
            .and_then(|l| l.find("<<"))
            .map_or(1, |c| c + 1);
        at(line, column, YamlErrorKind::BadMerge(found))
    })?;
    Ok(node)
}

/// The first document of `src`, and whether another one follows.
fn first_document(src: &str, duplicates_allowed: bool) -> Result<(Node, bool), YamlError> {
    let limits = Limits::new(duplicates_allowed);
    let mut docs = serde_yaml::Deserializer::from_str(src);
    let Some(first) = docs.next() else {
        return Err(YamlError {
            line: 1,
            column: 1,
            kind: YamlErrorKind::Empty,
        });
    };
    match (Builder { limits: &limits }).deserialize(first) {
        Ok(node) => Ok((node, docs.next().is_some())),
        Err(e) => Err(refused(src, &limits, &e).unwrap_or_else(|| syntax::error(src, &e))),
    }
}

/// The builder's own refusal, positioned where the parser was.
fn refused(src: &str, limits: &Limits, e: &serde_yaml::Error) -> Option<YamlError> {
    let why = limits.refusal.borrow().clone()?;
    let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
    Some(match why {
        Refusal::TooManyNodes => YamlError {
            line,
            column,
            kind: YamlErrorKind::TooManyNodes,
        },
        Refusal::TooDeep => YamlError {
            line,
            column,
            kind: YamlErrorKind::TooDeep,
        },
        Refusal::DuplicateKey(k) => {
            let (line, column) =
                syntax::second_key(src, line, column, &k).unwrap_or((line, column));
            YamlError {
                line,
                column,
                kind: YamlErrorKind::DuplicateKey(k),
            }
        }
    })
}

fn only_comments(src: &str) -> bool {
    src.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
    })
}

/// Deepest `[`/`{` nesting accepted.
const MAX_FLOW_DEPTH: usize = 64;

/// Where `[`/`{` nesting first goes beyond [`MAX_FLOW_DEPTH`], if it does.
/// A light scan: quotes count only where a quoted scalar can start, and
/// comments are skipped; brackets inside plain text may count, which only
/// matters for text with dozens of unclosed brackets.
fn too_deep_flow(src: &str) -> Option<(usize, usize)> {
    let (mut line, mut col) = (1usize, 0usize);
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut comment = false;
    let mut prev = '\n'; // previous non-space character ('\n' at line start)
    let mut after_space = true;
    for c in src.chars() {
        col += 1;
        if c == '\n' {
            line += 1;
            col = 0;
            comment = false;
            if quote.is_none() {
                prev = '\n';
            }
            after_space = true;
            continue;
        }
        if comment {
            continue;
        }
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if q == '"' && c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
                prev = c;
            }
            continue;
        }
        match c {
            '#' if after_space => comment = true,
            '\'' | '"' if matches!(prev, '\n' | ':' | '-' | '[' | '{' | ',' | '?') => {
                quote = Some(c)
            }
            '[' | '{' => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Some((line, col));
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        after_space = c == ' ' || c == '\t';
        if !after_space {
            prev = c;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(src: &str) -> (usize, usize, YamlErrorKind) {
        let e = read(src).expect_err(src);
        (e.line, e.column, e.kind)
    }

    #[test]
    fn refusals_are_typed_and_placed() {
        let dup = "name: a\nfaults:\n  - kind: delay\n    kind: drop\n";
        assert_eq!(
            kind(dup),
            (4, 5, YamlErrorKind::DuplicateKey("kind".into()))
        );
        assert_eq!(
            kind("a: 1\n---\na: 2\n"),
            (2, 1, YamlErrorKind::MultipleDocuments)
        );
        assert_eq!(kind("# only\n\n"), (1, 1, YamlErrorKind::Empty));
        assert_eq!(
            kind("a: 1\nb: {x: 1\n").2.hint(),
            YamlErrorKind::Unclosed {
                open: '{',
                close: '}',
                opened: None
            }
            .hint()
        );
        let merge = kind("a: &a 1\nb:\n  <<: *a\n");
        assert_eq!(
            merge,
            (
                3,
                3,
                YamlErrorKind::BadMerge(
                    "expected a mapping or list of mappings for merging, but found scalar"
                )
            )
        );
    }

    #[test]
    fn a_syntax_error_beats_a_duplicate_key() {
        let src = "a: 1\na: b: c\n";
        assert_eq!(kind(src).2, YamlErrorKind::UnexpectedColon);
    }

    #[test]
    fn merges_tags_and_numbers_build_the_tree() {
        let n = read("base: &b {x: 1, y: -2}\nm:\n  <<: *b\n  y: 3\nt: !k 1.5\n").expect("valid");
        let m = n.get("m").expect("m");
        assert_eq!(m.get("x"), Some(&Node::UInt(1)));
        assert_eq!(m.get("y"), Some(&Node::UInt(3)));
        assert_eq!(n.get("base").and_then(|b| b.get("y")), Some(&Node::Int(-2)));
        assert_eq!(
            n.get("t"),
            Some(&Node::Tagged("k".into(), Box::new(Node::Float(1.5))))
        );
    }

    #[test]
    fn alias_bombs_stop_at_the_node_limit() {
        let mut src = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (prev, cur) in ["a", "b", "c", "d", "e", "f", "g"]
            .windows(2)
            .map(|w| (w[0], w[1]))
        {
            let items = vec![format!("*{prev}"); 10].join(", ");
            src.push_str(&format!("{cur}: &{cur} [{items}]\n"));
        }
        assert_eq!(kind(&src).2, YamlErrorKind::TooManyNodes);
    }
}
