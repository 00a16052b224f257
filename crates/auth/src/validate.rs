//! Domain values parsed once at the edge ("parse, don't validate").

use iyagi_protocol::auth::{
    DEVICE_ID_MAX, DEVICE_NAME_MAX, PASSWORD_MAX, PASSWORD_MIN, USERNAME_MAX, USERNAME_MIN,
};
use thiserror::Error;

/// A rule a field broke; the message names the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct ValidationError(pub String);

/// 3 to 32 of `a-z 0-9 _ . -`; input is lower-cased first, so usernames are
/// case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Username, ValidationError> {
        // ASCII only, checked before lower-casing: Unicode lower-casing
        // maps some other characters onto ASCII (the Kelvin sign onto 'k'),
        // which would make look-alike names one account.
        let charset_ok = raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        let len = raw.chars().count();
        let lower = raw.to_ascii_lowercase();
        if !(USERNAME_MIN..=USERNAME_MAX).contains(&len) || !charset_ok {
            return Err(ValidationError(format!(
                "username must be {USERNAME_MIN} to {USERNAME_MAX} characters of a-z, 0-9, '_', '.', '-'"
            )));
        }
        Ok(Username(lower))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 8 to 256 characters (Unicode scalar values, as JSON Schema counts
/// them). The upper bound keeps hashing cost bounded.
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Password, ValidationError> {
        if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&raw.chars().count()) {
            return Err(ValidationError(format!(
                "password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters long"
            )));
        }
        Ok(Password(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// Chosen by the client: 1 to 64 of `A-Z a-z 0-9 _ . : -`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceId(String);

impl DeviceId {
    pub fn parse(raw: &str) -> Result<DeviceId, ValidationError> {
        let ok = !raw.is_empty()
            && raw.len() <= DEVICE_ID_MAX
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c));
        if !ok {
            return Err(ValidationError(format!(
                "device id must be 1 to {DEVICE_ID_MAX} characters of A-Z, a-z, 0-9, '_', '.', ':', '-'"
            )));
        }
        Ok(DeviceId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Optional display name of a device: at most 64 characters, no control characters.
pub fn device_name(raw: Option<&str>) -> Result<Option<String>, ValidationError> {
    match raw {
        None => Ok(None),
        Some(name)
            if name.chars().count() <= DEVICE_NAME_MAX && !name.chars().any(char::is_control) =>
        {
            Ok(Some(name.to_owned()))
        }
        Some(_) => Err(ValidationError(format!(
            "device name must be at most {DEVICE_NAME_MAX} characters without control characters"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["abc", "Min_Ji.99", "a-b", &"x".repeat(32)] {
            assert!(Username::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(Username::parse("MinJi").unwrap().as_str(), "minji");
        for bad in [
            "",
            "ab",
            &"x".repeat(33),
            "has space",
            "ünï",
            "semi;colon",
            "a\nb",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_and_devices() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"p".repeat(257)).is_err());
        assert!(DeviceId::parse("phone-1:a.b_c").is_ok());
        for bad in ["", "with space", &"d".repeat(65), "é"] {
            assert!(DeviceId::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(device_name(None), Ok(None));
        assert!(device_name(Some("Minji's phone")).is_ok());
        assert!(device_name(Some("bad\u{7}")).is_err());
        assert!(device_name(Some(&"n".repeat(65))).is_err());
    }
}
