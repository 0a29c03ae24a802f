//! The document tree between the layers of loading: the YAML reader
//! (`yaml/`) builds it, the shape check (`shape.rs`) walks it, and the
//! conversion (`convert/`) turns it into the typed model. It knows nothing of
//! the YAML library, so that library can be swapped inside `yaml/` alone.

/// One value of the document, aliases expanded and `<<` merges applied.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    /// A whole number that fits in `u64`.
    UInt(u64),
    /// A negative whole number.
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys in document order; each key at most once.
    Map(Vec<(Node, Node)>),
    /// `!tag value`.
    Tagged(String, Box<Node>),
}

impl Node {
    /// The value under the string key `key`, if this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(m) => m
                .iter()
                .find(|(k, _)| matches!(k, Node::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The entries, if this is a mapping.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match self {
            Node::Map(m) => Some(m),
            _ => None,
        }
    }
}

/// What the node is, for messages: `` `text` ``, `a list`, `an empty value`.
pub(crate) fn describe(v: &Node) -> String {
    match v {
        Node::Null => "an empty value".into(),
        Node::Bool(b) => format!("`{b}`"),
        Node::UInt(n) => format!("`{n}`"),
        Node::Int(n) => format!("`{n}`"),
        Node::Float(f) => format!("`{}`", float_text(*f)),
        Node::Str(s) => format!("`{}`", short(s)),
        Node::Seq(_) => "a list".into(),
        Node::Map(_) => "a mapping".into(),
        Node::Tagged(tag, _) => format!("a value tagged `!{tag}`"),
    }
}

/// A float as YAML would print it: always with a decimal point.
pub(crate) fn float_text(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.into();
    }
    let s = f.to_string();
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// A text on one line, cut after 40 characters.
pub(crate) fn short(s: &str) -> String {
    let one_line = s.replace('\n', "\\n");
    if one_line.chars().count() > 40 {
        let cut: String = one_line.chars().take(40).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}

/// A mapping key as text (`~` for a null key).
pub(crate) fn key_str(k: &Node) -> String {
    match k {
        Node::Str(s) => s.clone(),
        Node::UInt(n) => n.to_string(),
        Node::Int(n) => n.to_string(),
        Node::Float(f) => float_text(*f),
        Node::Bool(b) => b.to_string(),
        Node::Null => "~".into(),
        other => describe(other),
    }
}
