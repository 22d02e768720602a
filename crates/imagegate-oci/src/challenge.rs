//! The distribution auth protocol's texts from outside: `WWW-Authenticate` challenges
//! and token service answers. Pure (no I/O), so they can be fuzzed without the client.

use std::collections::BTreeMap;

use serde::Deserialize;

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

/// What a token service answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenAnswer {
    /// The token (`token`, or OAuth2's `access_token`), never empty.
    pub token: String,
    /// Seconds it is valid for, if the answer says.
    pub expires_in: Option<u64>,
}

/// Why a token service answer is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenAnswerError {
    /// Not the JSON object the protocol defines.
    #[error("answer is not a token document: {0}")]
    NotATokenDocument(String),
    /// Neither `token` nor `access_token` (or both empty).
    #[error("answer has no token")]
    NoToken,
}

/// Parses a token service's JSON answer (docker's token protocol, or OAuth2's).
pub fn parse_token_answer(bytes: &[u8]) -> Result<TokenAnswer, TokenAnswerError> {
    #[derive(Deserialize)]
    struct Document {
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        access_token: Option<String>,
        #[serde(default)]
        expires_in: Option<u64>,
    }
    let document: Document = serde_json::from_slice(bytes)
        .map_err(|e| TokenAnswerError::NotATokenDocument(e.to_string()))?;
    let token = document
        .token
        .filter(|t| !t.is_empty())
        .or(document.access_token)
        .filter(|t| !t.is_empty())
        .ok_or(TokenAnswerError::NoToken)?;
    Ok(TokenAnswer {
        token,
        expires_in: document.expires_in,
    })
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
    fn token_answers() {
        let ok = |token: &str, expires_in| {
            Ok(TokenAnswer {
                token: token.into(),
                expires_in,
            })
        };
        assert_eq!(
            parse_token_answer(br#"{"token":"t","expires_in":60}"#),
            ok("t", Some(60))
        );
        assert_eq!(
            parse_token_answer(br#"{"access_token":"a"}"#),
            ok("a", None)
        );
        assert_eq!(
            parse_token_answer(br#"{"token":"","access_token":"a"}"#),
            ok("a", None)
        );
        assert_eq!(
            parse_token_answer(br#"{"token":""}"#),
            Err(TokenAnswerError::NoToken)
        );
        assert_eq!(parse_token_answer(b"{}"), Err(TokenAnswerError::NoToken));
        // serde reads a struct from an array too; an empty one has no token.
        assert_eq!(parse_token_answer(b"[]"), Err(TokenAnswerError::NoToken));
        for bad in [&b"<html>"[..], br#"{"expires_in":-1,"token":"t"}"#] {
            assert!(
                matches!(
                    parse_token_answer(bad),
                    Err(TokenAnswerError::NotATokenDocument(_))
                ),
                "{bad:?}"
            );
        }
    }

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
