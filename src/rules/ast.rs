//! The typed syntax tree of a rule file.
//!
//! Built by `rules::syntax` from the parse tree and nothing more: no name is
//! resolved and no pattern compiled here. Every node carries the [`Span`] of
//! its text so that later phases can point at it.

use serde_json::Value;

use super::path::PathExpr;
use super::source::Span;

/// A name or a decoded string literal, with where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Name {
    pub text: String,
    pub span: Span,
}

/// One parsed rule file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Model(Model),
    Topic(TopicDecl),
    Detector(Detector),
    Plugin(Plugin),
    Rule(Rule),
    Test(Test),
}

/// `model NAME { FIELD: CLASS [TYPE] ... }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub name: Name,
    pub fields: Vec<FieldDecl>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FieldDecl {
    /// The field's path below the payload, split on `.`.
    pub path: Vec<String>,
    pub name: Name,
    pub class: DataClass,
    pub ty: Option<FieldType>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataClass {
    Phi,
    Pii,
    Public,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldType {
    String,
    Number,
    Boolean,
    Object,
    Array,
}

/// `topic PATTERN carries MODEL`.
#[derive(Clone, Debug, PartialEq)]
pub struct TopicDecl {
    pub pattern: Name,
    pub model: Name,
    pub span: Span,
}

/// `detector NAME matches "REGEX"`.
#[derive(Clone, Debug, PartialEq)]
pub struct Detector {
    pub name: Name,
    pub regex: Name,
    pub span: Span,
}

/// `plugin NAME { ... }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Plugin {
    pub name: Name,
    pub publishes: Vec<Name>,
    pub subscribes: Vec<Name>,
    pub receives: Vec<Receive>,
    pub endpoints: Vec<Name>,
    pub span: Span,
}

/// A `receive` statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Receive {
    All {
        span: Span,
    },
    Path {
        path: PathExpr,
        transform: Option<ReceiveTransform>,
        span: Span,
    },
}

/// The modifier of `receive PATH [encrypted|hashed|masked]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiveTransform {
    Encrypted,
    Hashed,
    Masked,
}

/// `rule NAME { [when CONDITION] ACTION... }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub name: Name,
    pub condition: Option<Condition>,
    pub actions: Vec<Action>,
    pub span: Span,
}

/// A condition over the event.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
    Check(Check),
}

/// One test on the value at a path: `payload.age >= 18`.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub path: PathExpr,
    pub op: TestOp,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TestOp {
    Exists,
    Compare(CompareOp, Literal),
    /// A regex; on the path `topic`, a topic pattern.
    Matches(Name),
    StartsWith(Name),
    Contains(Name),
    In(Vec<Literal>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CompareOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }
}

/// A literal value in a condition.
#[derive(Clone, Debug, PartialEq)]
pub struct Literal {
    pub value: Value,
    pub span: Span,
}

/// One action of a rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Action {
    pub kind: ActionKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ActionKind {
    Strip(PathExpr),
    Encrypt {
        path: PathExpr,
        key: Option<Name>,
    },
    Hash {
        path: PathExpr,
        key: Option<Name>,
    },
    Mask {
        path: PathExpr,
        keep: u32,
    },
    Redact {
        path: PathExpr,
        detectors: Vec<Name>,
    },
    Block,
    Route(Vec<Name>),
}

impl ActionKind {
    /// The path a field action works on; `None` for `block` and `route to`.
    pub fn path(&self) -> Option<&PathExpr> {
        match self {
            ActionKind::Strip(path)
            | ActionKind::Encrypt { path, .. }
            | ActionKind::Hash { path, .. }
            | ActionKind::Mask { path, .. }
            | ActionKind::Redact { path, .. } => Some(path),
            ActionKind::Block | ActionKind::Route(_) => None,
        }
    }

    /// The keyword that introduces the action.
    pub fn keyword(&self) -> &'static str {
        match self {
            ActionKind::Strip(_) => "strip",
            ActionKind::Encrypt { .. } => "encrypt",
            ActionKind::Hash { .. } => "hash",
            ActionKind::Mask { .. } => "mask",
            ActionKind::Redact { .. } => "redact",
            ActionKind::Block => "block",
            ActionKind::Route(_) => "route to",
        }
    }

    /// Strength when several field actions reach one value: the strongest
    /// wins (strip, then encrypt, hash, mask, redact).
    pub fn strength(&self) -> u8 {
        match self {
            ActionKind::Strip(_) => 5,
            ActionKind::Encrypt { .. } => 4,
            ActionKind::Hash { .. } => 3,
            ActionKind::Mask { .. } => 2,
            ActionKind::Redact { .. } => 1,
            ActionKind::Block | ActionKind::Route(_) => 0,
        }
    }
}

/// `test NAME { publish ... expect ... }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Test {
    pub name: Name,
    pub topic: Name,
    pub publisher: Name,
    pub attributes: Option<Value>,
    pub payload: Value,
    pub expectations: Vec<Expectation>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expectation {
    pub plugin: Name,
    pub kind: ExpectKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExpectKind {
    Blocked,
    /// Every field given is in the delivered payload with that value.
    Receives(Value),
    NotReceives(PathExpr),
}
