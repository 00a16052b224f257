//! Settings that may carry credentials: URLs with a password in them
//! (database, Redis, NATS) and tokens. They never print: `Debug`, `Display`
//! and `Serialize` (what `iyagi config` prints) show them redacted; the
//! code that connects asks for the real value with `expose`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A URL whose password (in `user:password@`, or a `password=` query
/// parameter) is never shown.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> SecretUrl {
        SecretUrl(url.into())
    }

    /// The URL itself, for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl From<&str> for SecretUrl {
    fn from(url: &str) -> SecretUrl {
        SecretUrl::new(url)
    }
}

impl From<String> for SecretUrl {
    fn from(url: String) -> SecretUrl {
        SecretUrl(url)
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl std::fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SecretUrl, D::Error> {
        String::deserialize(deserializer).map(SecretUrl)
    }
}

/// A secret string (a token): shown as `***` when set, as empty when not.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(secret: impl Into<String>) -> SecretString {
        SecretString(secret.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn shown(&self) -> &'static str {
        if self.0.is_empty() { "" } else { "***" }
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.shown())
    }
}

impl Serialize for SecretString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.shown())
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SecretString, D::Error> {
        String::deserialize(deserializer).map(SecretString)
    }
}

/// `scheme://user:password@host/...?password=...` with both passwords
/// replaced by `***`. Written by hand: a URL parser would also normalise
/// what it prints (and `sqlite:` paths are not URLs a parser agrees on).
fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let authority_start = scheme_end + 3;
        let authority_end = out[authority_start..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| authority_start + i);
        if let Some(at) = out[authority_start..authority_end].rfind('@') {
            let userinfo = &out[authority_start..authority_start + at];
            if let Some(colon) = userinfo.find(':') {
                let start = authority_start + colon + 1;
                out.replace_range(start..authority_start + at, "***");
            }
        }
    }
    if let Some(query_start) = out.find('?') {
        let (head, query) = out.split_at(query_start + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{head}{}", query.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_print() {
        for (url, shown) in [
            (
                "postgres://app:hunter2@db:5432/iyagi",
                "postgres://app:***@db:5432/iyagi",
            ),
            ("redis://:hunter2@cache:6379", "redis://:***@cache:6379"),
            ("nats://user:p%40ss@nats:4222", "nats://user:***@nats:4222"),
            (
                "postgres://app@db/iyagi?password=hunter2&sslmode=require",
                "postgres://app@db/iyagi?password=***&sslmode=require",
            ),
            ("sqlite://./data/iyagi.db", "sqlite://./data/iyagi.db"),
            ("postgres://app@db/iyagi", "postgres://app@db/iyagi"),
        ] {
            let secret = SecretUrl::new(url);
            assert_eq!(secret.to_string(), shown);
            assert_eq!(format!("{secret:?}"), format!("{shown:?}"));
            assert_eq!(
                serde_json::to_string(&secret).unwrap(),
                format!("{shown:?}")
            );
            assert_eq!(secret.expose(), url);
        }
        let token = SecretString::new("s3cret");
        assert_eq!(format!("{token:?}"), "\"***\"");
        assert_eq!(serde_json::to_string(&token).unwrap(), "\"***\"");
        assert_eq!(
            serde_json::to_string(&SecretString::default()).unwrap(),
            "\"\""
        );
    }
}
