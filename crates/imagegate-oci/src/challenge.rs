//! `WWW-Authenticate` challenges of the distribution auth protocol.

use std::collections::BTreeMap;

/// What a registry asked for in its `401` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Send the credentials with every request.
    Basic,
    /// Fetch a token from `realm` for `service` and `scope`, then send it.
    Bearer {
        /// Token endpoint URL.
        realm: String,
        /// `service` parameter to pass to the token endpoint.
        service: Option<String>,
        /// `scope` the registry asked for (we ask for our own scope anyway).
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header value; `None` when it is neither a Basic nor a
/// Bearer challenge with a realm.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let mut params = parse_params(rest);
            let realm = params.remove("realm").filter(|r| !r.is_empty())?;
            Some(Challenge::Bearer {
                realm,
                service: params.remove("service"),
                scope: params.remove("scope"),
            })
        }
        _ => None,
    }
}

/// `key="value", key=value` pairs; quoted values may contain commas and `\"`.
fn parse_params(text: &str) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_ascii_lowercase();
        if key.is_empty() {
            return params;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                value.push(c);
            }
            value = value.trim().to_owned();
        }
        params.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let bearer = |realm: &str, service: Option<&str>, scope: Option<&str>| {
            Some(Challenge::Bearer {
                realm: realm.into(),
                service: service.map(Into::into),
                scope: scope.map(Into::into),
            })
        };
        let table: &[(&str, Option<Challenge>)] = &[
            (r#"Basic realm="Registry Realm""#, Some(Challenge::Basic)),
            ("basic", Some(Challenge::Basic)),
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
                bearer(
                    "https://auth.docker.io/token",
                    Some("registry.docker.io"),
                    Some("repository:library/nginx:pull"),
                ),
            ),
            (
                r#"Bearer realm="https://ghcr.io/token", service="ghcr.io", scope="repository:a/b:pull,push""#,
                bearer(
                    "https://ghcr.io/token",
                    Some("ghcr.io"),
                    Some("repository:a/b:pull,push"),
                ),
            ),
            (
                "Bearer realm=http://127.0.0.1:1/token,service=svc",
                bearer("http://127.0.0.1:1/token", Some("svc"), None),
            ),
            (r#"Bearer realm="a\"b""#, bearer("a\"b", None, None)),
            (r#"Bearer service="x""#, None),
            (r#"Bearer realm="""#, None),
            ("Negotiate abc", None),
            ("", None),
        ];
        for (header, expected) in table {
            assert_eq!(&parse_challenge(header), expected, "{header}");
        }
    }
}
