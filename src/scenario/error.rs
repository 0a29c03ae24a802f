//! The one error type of scenario loading. Every message is one line and
//! names the file, line and column, says what was found and what was
//! expected, and suggests the nearest valid spelling where there is one.

use thiserror::Error;

/// Scenario files larger than this are refused before parsing.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Why a scenario file could not be loaded.
#[derive(Debug, Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read {file}: {source}")]
    Io {
        /// The file as given.
        file: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is over [`MAX_FILE_BYTES`]; it was not parsed.
    #[error("{file} is {size} bytes, too large for a scenario file (the limit is 1 MiB)")]
    TooLarge {
        /// The file as given.
        file: String,
        /// Its size in bytes.
        size: u64,
    },
    /// The content is not a valid scenario.
    #[error("{message} at {file}:{line}:{column}{}", hint_suffix(.hint))]
    Invalid {
        /// The file as given.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Where in the document, e.g. `faults[2].at` (empty for the whole file).
        path: String,
        /// What is wrong.
        message: String,
        /// A suggestion (`did you mean …?`) or what was expected.
        hint: Option<String>,
    },
}

fn hint_suffix(hint: &Option<String>) -> String {
    match hint {
        Some(h) => format!(", {h}"),
        None => String::new(),
    }
}

impl ScenarioError {
    /// The file the error is about.
    pub fn file(&self) -> &str {
        match self {
            ScenarioError::Io { file, .. }
            | ScenarioError::TooLarge { file, .. }
            | ScenarioError::Invalid { file, .. } => file,
        }
    }

    /// 1-based line, when the error is about a place in the file.
    pub fn line(&self) -> Option<usize> {
        match self {
            ScenarioError::Invalid { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// 1-based column, when the error is about a place in the file.
    pub fn column(&self) -> Option<usize> {
        match self {
            ScenarioError::Invalid { column, .. } => Some(*column),
            _ => None,
        }
    }

    /// The document path (`faults[2].at`), when known.
    pub fn path(&self) -> Option<&str> {
        match self {
            ScenarioError::Invalid { path, .. } if !path.is_empty() => Some(path),
            _ => None,
        }
    }
}

/// Suggests the candidate nearest to `word`, if one is near enough.
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let w = word.to_ascii_lowercase();
    let mut best: Option<(&'a str, f64)> = None;
    for c in candidates {
        let d = strsim::damerau_levenshtein(&w, c);
        let jw = strsim::jaro_winkler(&w, c);
        let close = d <= (c.len().max(3) / 3).max(1) || jw >= 0.88;
        if close && best.is_none_or(|(_, s)| jw > s) {
            best = Some((c, jw));
        }
    }
    best.map(|(c, _)| c)
}

/// `` `a`, `b` or `c` ``
pub(crate) fn one_of(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("`{s}`")).collect();
    match quoted.len() {
        0 => String::new(),
        1 => quoted[0].clone(),
        n => format!("{} or {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

/// A hint: `did you mean `x`?` when something is near, else `expected …`.
pub(crate) fn hint_for(word: &str, candidates: &[&str]) -> String {
    match suggest(word, candidates) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("expected {}", one_of(candidates)),
    }
}
