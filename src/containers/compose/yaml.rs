//! A YAML document as a tree whose every node knows its line and column
//! (saphyr-parser's events carry spans), with anchors, aliases and `<<` merge
//! keys resolved by orc under a node budget, so an alias bomb is an error,
//! not an out-of-memory.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Where a node starts: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    pub line: usize,
    pub col: usize,
}

impl Mark {
    fn of(span: &Span) -> Mark {
        Mark {
            line: span.start.line(),
            col: span.start.col() + 1,
        }
    }
}

/// One node: a scalar (with whether it was written plain, so untyped), a sequence or a
/// mapping (keys in document order, each with its own mark).
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Scalar { text: String, plain: bool, at: Mark },
    Seq(Vec<Node>, Mark),
    Map(Vec<Entry>, Mark),
}

/// A mapping entry: the key (always a scalar), where it is, and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub at: Mark,
    pub value: Node,
}

impl Node {
    pub fn at(&self) -> Mark {
        match self {
            Node::Scalar { at, .. } | Node::Seq(_, at) | Node::Map(_, at) => *at,
        }
    }

    /// A plain `null`, `~` or empty scalar.
    pub fn is_null(&self) -> bool {
        matches!(self, Node::Scalar { text, plain: true, .. } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    fn size(&self) -> usize {
        match self {
            Node::Scalar { .. } => 1,
            Node::Seq(v, _) => 1 + v.iter().map(Node::size).sum::<usize>(),
            Node::Map(v, _) => 1 + v.iter().map(|e| 1 + e.value.size()).sum::<usize>(),
        }
    }
}

/// Most nodes a document may expand to (aliases counted each time they are used).
pub const MAX_NODES: usize = 200_000;

/// A YAML error at a place.
pub type YamlError = (Mark, String);

enum Frame {
    Seq(Vec<Node>, Mark, usize),
    Map(Vec<Entry>, Mark, usize, Option<(String, Mark)>),
}

struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    done: Option<Node>,
}

impl Builder {
    fn charge(&mut self, n: usize, at: Mark) -> Result<(), YamlError> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err((
                at,
                format!("the document expands to more than {MAX_NODES} nodes (an alias bomb?)"),
            ));
        }
        Ok(())
    }

    /// Places a finished node into its parent (or as the document).
    fn put(&mut self, node: Node, anchor: usize) -> Result<(), YamlError> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.done.is_some() {
                    return Err((node.at(), "only one YAML document is allowed".into()));
                }
                self.done = Some(node);
            }
            Some(Frame::Seq(v, ..)) => v.push(node),
            Some(Frame::Map(entries, _, _, key)) => match key.take() {
                None => match node {
                    Node::Scalar { text, at, .. } => *key = Some((text, at)),
                    other => {
                        return Err((other.at(), "a mapping key must be a plain value".into()));
                    }
                },
                Some((k, at)) => {
                    if entries.iter().any(|e| e.key == k) {
                        return Err((at, format!("duplicate key {k:?}")));
                    }
                    entries.push(Entry {
                        key: k,
                        at,
                        value: node,
                    });
                }
            },
        }
        Ok(())
    }

    fn event(&mut self, ev: Event, span: Span) -> Result<(), YamlError> {
        let at = Mark::of(&span);
        match ev {
            Event::Scalar(text, style, anchor, _) => {
                self.charge(1, at)?;
                let plain = style == ScalarStyle::Plain;
                self.put(
                    Node::Scalar {
                        text: text.into_owned(),
                        plain,
                        at,
                    },
                    anchor,
                )
            }
            Event::Alias(id) => {
                let node = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or((at, "an alias to an unknown anchor".to_string()))?;
                self.charge(node.size(), at)?;
                self.put(node, 0)
            }
            Event::SequenceStart(anchor, _) => {
                self.charge(1, at)?;
                self.stack.push(Frame::Seq(Vec::new(), at, anchor));
                Ok(())
            }
            Event::MappingStart(anchor, _) => {
                self.charge(1, at)?;
                self.stack.push(Frame::Map(Vec::new(), at, anchor, None));
                Ok(())
            }
            Event::SequenceEnd => match self.stack.pop() {
                Some(Frame::Seq(v, at, anchor)) => self.put(Node::Seq(v, at), anchor),
                _ => Err((at, "unbalanced sequence".into())),
            },
            Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Map(entries, at, anchor, _)) => {
                    let merged = merge(entries)?;
                    self.put(Node::Map(merged, at), anchor)
                }
                _ => Err((at, "unbalanced mapping".into())),
            },
            _ => Ok(()),
        }
    }
}

/// Resolves `<<` merge keys: the merged mappings' entries come after the explicit ones and
/// never override them (earlier merged mappings win over later ones).
fn merge(entries: Vec<Entry>) -> Result<Vec<Entry>, YamlError> {
    if !entries.iter().any(|e| e.key == "<<") {
        return Ok(entries);
    }
    let (merges, mut out): (Vec<Entry>, Vec<Entry>) =
        entries.into_iter().partition(|e| e.key == "<<");
    for m in merges {
        let sources = match m.value {
            Node::Map(..) => vec![m.value],
            Node::Seq(v, _) => v,
            other @ Node::Scalar { .. } => {
                return Err((other.at(), "a merge key (<<) takes a mapping".into()));
            }
        };
        for s in sources {
            let Node::Map(es, _) = s else {
                return Err((m.at, "a merge key (<<) takes mappings".into()));
            };
            for e in es {
                if !out.iter().any(|o| o.key == e.key) {
                    out.push(e);
                }
            }
        }
    }
    Ok(out)
}

/// Parses one YAML document (an empty input is an empty mapping).
pub fn parse(text: &str) -> Result<Node, YamlError> {
    let mut b = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        done: None,
    };
    for item in Parser::new_from_str(text) {
        let (ev, span) = item.map_err(|e| {
            (
                Mark {
                    line: e.marker().line(),
                    col: e.marker().col() + 1,
                },
                e.info().to_string(),
            )
        })?;
        b.event(ev, span)?;
    }
    Ok(b.done
        .unwrap_or(Node::Map(Vec::new(), Mark { line: 1, col: 1 })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: &Node) -> Vec<(&str, usize, usize)> {
        let Node::Map(es, _) = n else { panic!() };
        es.iter()
            .map(|e| (e.key.as_str(), e.at.line, e.at.col))
            .collect()
    }

    #[test]
    fn marks_and_merges() {
        let n = parse("x-base: &b\n  a: 1\n  b: 2\nsvc:\n  <<: *b\n  b: 3\n  c: 'q'\n").unwrap();
        let Node::Map(top, _) = &n else { panic!() };
        assert_eq!(keys(&n), [("x-base", 1, 1), ("svc", 4, 1)]);
        let svc = &top[1].value;
        assert_eq!(keys(svc), [("b", 6, 3), ("c", 7, 3), ("a", 2, 3)]);
        let Node::Map(es, _) = svc else { panic!() };
        assert_eq!(
            es[0].value,
            Node::Scalar {
                text: "3".into(),
                plain: true,
                at: Mark { line: 6, col: 6 }
            }
        );
        assert!(matches!(&es[1].value, Node::Scalar { plain: false, .. }));
    }

    #[test]
    fn bad_documents_are_errors_with_a_place() {
        assert_eq!(
            parse("a: 1\na: 2\n").unwrap_err().0,
            Mark { line: 2, col: 1 }
        );
        assert!(parse("a: [1\n").is_err());
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
        assert!(parse("a: *nope\n").is_err());
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..8 {
            let prev = if i == 0 {
                "a".to_string()
            } else {
                format!("l{}", i - 1)
            };
            bomb.push_str(&format!(
                "l{i}: &l{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        let e = parse(&bomb).unwrap_err();
        assert!(e.1.contains("alias bomb"), "{e:?}");
        assert_eq!(
            parse("").unwrap(),
            Node::Map(vec![], Mark { line: 1, col: 1 })
        );
    }
}
