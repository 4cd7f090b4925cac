//! Finding a member repeated inside one JSON object, at any depth (feature `serde`).
//!
//! `serde_json::Value` keeps the last of two members with the same name, so a keys file
//! with `"revoked": true, …, "revoked": false` would load as not revoked without a word. The
//! keys file is checked with [`check`] before any entry is read.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// One step from the document's root to a value: a member name or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Member(String),
    Index(usize),
}

/// A member name that appears twice in one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Repeated {
    /// Where the object is, from the root (empty: the root object itself).
    pub(crate) object: Vec<Step>,
    /// The repeated name (after JSON unescaping: `"a"` and `"\u0061"` are the same member).
    pub(crate) member: String,
}

/// What is wrong with a JSON text before its values are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    /// A member appears twice in one object.
    Repeated(Repeated),
    /// Not one JSON value: where the syntax breaks (never the text there).
    Syntax { line: usize, column: usize },
}

/// Checks that `json` is one valid JSON value in which no object repeats a member, without
/// building any value (memory: the nesting depth and one object's member names).
pub(crate) fn check(json: &str) -> Result<(), Problem> {
    let found = RefCell::new(None);
    let mut path = Vec::new();
    let mut de = serde_json::Deserializer::from_str(json);
    let walked = Walk {
        path: &mut path,
        found: &found,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    if let Some(repeated) = found.into_inner() {
        return Err(Problem::Repeated(repeated));
    }
    walked.map_err(|e| Problem::Syntax {
        line: e.line(),
        column: e.column(),
    })
}

/// The first member repeated inside an object of `json`, in document order. `None` when no
/// object repeats a member, or when `json` is not valid JSON (the caller's parser says why).
#[cfg(test)]
pub(crate) fn first_repeated_member(json: &str) -> Option<Repeated> {
    match check(json) {
        Err(Problem::Repeated(r)) => Some(r),
        _ => None,
    }
}

/// Walks one value; records the first repeated member in `found` and stops there.
struct Walk<'a> {
    path: &'a mut Vec<Step>,
    found: &'a RefCell<Option<Repeated>>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            self.path.push(Step::Index(i));
            let more = seq.next_element_seed(Walk {
                path: self.path,
                found: self.found,
            });
            self.path.pop();
            if more?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(name) = map.next_key::<String>()? {
            if seen.contains(&name) {
                *self.found.borrow_mut() = Some(Repeated {
                    object: self.path.clone(),
                    member: name,
                });
                return Err(de::Error::custom("repeated member"));
            }
            self.path.push(Step::Member(name.clone()));
            let walked = map.next_value_seed(Walk {
                path: self.path,
                found: self.found,
            });
            self.path.pop();
            walked?;
            seen.insert(name);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(s: &str) -> Step {
        Step::Member(s.to_owned())
    }

    #[test]
    fn finds_the_first_repeat_at_every_level() {
        let at = |json: &str| first_repeated_member(json).map(|r| (r.object, r.member));
        assert_eq!(
            at(r#"{"keys": [], "keys": []}"#),
            Some((vec![], "keys".into()))
        );
        assert_eq!(
            at(r#"{"keys": [{"a": 1}, {"revoked": true, "x": 2, "revoked": false}]}"#),
            Some((vec![member("keys"), Step::Index(1)], "revoked".into()))
        );
        assert_eq!(
            at(r#"{"keys": [{"metadata": {"team": "a", "team": "b"}}]}"#),
            Some((
                vec![member("keys"), Step::Index(0), member("metadata")],
                "team".into()
            ))
        );
        assert_eq!(
            at(r#"{"a": [[{"b": {"c": 1, "c": 2}}]]}"#),
            Some((
                vec![member("a"), Step::Index(0), Step::Index(0), member("b")],
                "c".into()
            ))
        );
        // Escapes are decoded before comparing.
        assert_eq!(
            at(r#"{"revoked": true, "revok\u0065d": false}"#),
            Some((vec![], "revoked".into()))
        );
    }

    #[test]
    fn same_names_in_different_objects_are_not_repeats() {
        for json in [
            r#"{"keys": [{"name": "a", "revoked": true}, {"name": "b", "revoked": false}]}"#,
            r#"{"name": {"name": {"name": 1}}}"#,
            r#"{"a": 1, "A": 2, "a ": 3}"#,
            r#"[1, "x", null, true, 2.5, -3, {}]"#,
            "{",
            "",
        ] {
            assert_eq!(first_repeated_member(json), None, "{json}");
        }
    }

    #[test]
    fn syntax_errors_give_a_place_only() {
        assert_eq!(check(r#"{"keys": []}"#), Ok(()));
        for (json, line, column) in [("{", 1, 1), ("{\"a\": 1} x", 1, 10), ("[1,\n2,]", 2, 3)] {
            assert_eq!(check(json), Err(Problem::Syntax { line, column }), "{json}");
        }
    }
}
