//! Label selectors (`a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x,y)`) and
//! field selectors (`metadata.name`, `metadata.namespace`, with `=`, `==`, `!=`), as
//! `LIST`/`WATCH` take them in `labelSelector` and `fieldSelector`.

use serde_json::Value;

/// One parsed requirement.
#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A conjunction of requirements; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Selector(Vec<Requirement>);

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn set(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_owned()).collect())
}

impl Selector {
    /// Parses a label selector; `Err` names the bad term.
    pub(crate) fn labels(s: &str) -> Result<Selector, String> {
        let mut reqs = Vec::new();
        for term in split_top(s)
            .into_iter()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            let req = if let Some(k) = term.strip_prefix('!') {
                Requirement::NotExists(k.trim().to_owned())
            } else if let Some((k, v)) = term.split_once("!=") {
                Requirement::NotEquals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                Requirement::Equals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, v)) = term.split_once(" notin ") {
                Requirement::NotIn(
                    k.trim().to_owned(),
                    set(v).ok_or(format!("unable to parse requirement: {term:?}"))?,
                )
            } else if let Some((k, v)) = term.split_once(" in ") {
                Requirement::In(
                    k.trim().to_owned(),
                    set(v).ok_or(format!("unable to parse requirement: {term:?}"))?,
                )
            } else if term
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            {
                Requirement::Exists(term.to_owned())
            } else {
                return Err(format!("unable to parse requirement: {term:?}"));
            };
            reqs.push(req);
        }
        Ok(Selector(reqs))
    }

    /// Parses a field selector: only equality on `metadata.name` / `metadata.namespace`,
    /// like most resources of a real server.
    pub(crate) fn fields(s: &str) -> Result<Selector, String> {
        let sel = Selector::labels(s)?;
        for r in &sel.0 {
            let field = match r {
                Requirement::Equals(f, _) | Requirement::NotEquals(f, _) => f,
                _ => return Err(format!("invalid field selector: {s:?}")),
            };
            if field != "metadata.name" && field != "metadata.namespace" {
                return Err(format!("field label not supported: {field}"));
            }
        }
        Ok(sel)
    }

    /// Whether the object's labels satisfy every requirement.
    pub(crate) fn matches_labels(&self, obj: &Value) -> bool {
        let label = |k: &str| {
            obj.pointer("/metadata/labels")
                .and_then(|l| l.get(k))
                .and_then(Value::as_str)
        };
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => label(k) == Some(v),
            Requirement::NotEquals(k, v) => label(k) != Some(v),
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::NotExists(k) => label(k).is_none(),
            Requirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => !label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
        })
    }

    /// Whether the object's fields satisfy every requirement.
    pub(crate) fn matches_fields(&self, obj: &Value) -> bool {
        let field = |f: &str| {
            let p = if f == "metadata.name" {
                "/metadata/name"
            } else {
                "/metadata/namespace"
            };
            obj.pointer(p).and_then(Value::as_str).unwrap_or("")
        };
        self.0.iter().all(|r| match r {
            Requirement::Equals(f, v) => field(f) == v,
            Requirement::NotEquals(f, v) => field(f) != v,
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selector_grammar() {
        let obj = json!({"metadata": {"labels": {"env": "prod", "team": "a"}}});
        for (sel, want) in [
            ("", true),
            ("env=prod", true),
            ("env==prod", true),
            ("env!=prod", false),
            ("env", true),
            ("!env", false),
            ("tier", false),
            ("env in (dev, prod)", true),
            ("env notin (dev,prod)", false),
            ("env in (dev,prod),team=a", true),
            ("env in (dev,prod),team=b", false),
        ] {
            assert_eq!(
                Selector::labels(sel).unwrap().matches_labels(&obj),
                want,
                "{sel}"
            );
        }
        assert!(Selector::labels("env in dev").is_err());
        assert!(Selector::fields("spec.nodeName=x").is_err());
    }
}
