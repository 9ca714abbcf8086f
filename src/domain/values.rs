//! Values from outside, parsed once at the edge so the rules only ever see valid ones.

use super::DomainError;

/// Trimmed text of bounded length, e.g. a ticket title.
fn bounded(field: &'static str, value: &str, min: usize, max: usize) -> Result<String, DomainError> {
    let value = value.trim();
    let len = value.chars().count();
    if len < min {
        return Err(DomainError::BadInput(format!("{field} must not be empty")));
    }
    if len > max {
        return Err(DomainError::BadInput(format!("{field} must be at most {max} characters")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        return Err(DomainError::BadInput(format!("{field} must not contain control characters")));
    }
    Ok(value.to_string())
}

/// A ticket title: 1 to 200 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        bounded("title", value, 1, 200).map(Title)
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A ticket description: at most 10,000 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        bounded("description", value, 0, 10_000).map(Description)
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A note or notice message: 1 to 2,000 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message(String);

impl Message {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        bounded("message", value, 1, 2_000).map(Message)
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A notice kind such as `SLA_BREACHED` or `CREW_DISPATCHED`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeKind(String);

impl NoticeKind {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        let value = value.trim();
        let mut chars = value.chars();
        let valid = value.len() <= 64
            && chars.next().is_some_and(|c| c.is_ascii_uppercase())
            && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(DomainError::BadInput(
                "kind must be 1 to 64 characters of A-Z, 0-9 and _, starting with a letter (e.g. CREW_DISPATCHED)"
                    .into(),
            ));
        }
        Ok(NoticeKind(value.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tracking number such as `DEMO-2026-000042`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingNumber(String);

impl TrackingNumber {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        let value = value.trim().to_ascii_uppercase();
        let parts: Vec<&str> = value.split('-').collect();
        let valid = parts.len() >= 3
            && value.len() <= 80
            && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()))
            && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
            && parts[parts.len() - 2].len() == 4
            && parts[parts.len() - 2].chars().all(|c| c.is_ascii_digit());
        if !valid {
            return Err(DomainError::BadInput("a tracking number looks like DEMO-2026-000042".into()));
        }
        Ok(TrackingNumber(value))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A person's display name: 1 to 120 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        let name = bounded("displayName", value, 1, 120)?;
        if name.contains(['\n', '\r', '\t']) {
            return Err(DomainError::BadInput("displayName must be one line".into()));
        }
        Ok(DisplayName(name))
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A phone number in E.164 form, e.g. `+27821234567` (spaces, dashes and brackets are dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        let compact: String = value.trim().chars().filter(|c| !matches!(c, ' ' | '-' | '(' | ')')).collect();
        let digits = compact.strip_prefix('+').unwrap_or("");
        let valid =
            (7..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) && !digits.starts_with('0');
        if !valid {
            return Err(DomainError::BadInput(
                "phone must be in international form: + and 7 to 15 digits, e.g. +27821234567".into(),
            ));
        }
        Ok(Phone(compact))
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A municipality's slug, e.g. `demo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slug(String);

impl Slug {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        let value = value.trim().to_ascii_lowercase();
        let mut chars = value.chars();
        let valid = value.len() <= 63
            && chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            return Err(DomainError::BadInput(
                "municipalitySlug is not a municipality's short name (e.g. `demo`)".into(),
            ));
        }
        Ok(Slug(value))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_values() {
        assert_eq!(DisplayName::parse("  Thandi ").unwrap().into_inner(), "Thandi");
        assert!(DisplayName::parse("").is_err());
        assert!(DisplayName::parse("a\nb").is_err());
        assert!(DisplayName::parse(&"x".repeat(121)).is_err());
        assert_eq!(Phone::parse("+27 82 000-0001").unwrap().into_inner(), "+27820000001");
        for bad in ["0820000001", "+0820000001", "+27", "+2782000000112345", "+2782abc0001", ""] {
            assert!(Phone::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Slug::parse(" Demo ").unwrap().as_str(), "demo");
        assert!(Slug::parse("-x").is_err());
        assert!(Slug::parse("a b").is_err());
    }

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(Title::parse("  Leak ").unwrap().into_inner(), "Leak");
        assert!(Title::parse("   ").is_err());
        assert!(Title::parse(&"x".repeat(201)).is_err());
        assert!(Title::parse("bell\u{7}").is_err());
        assert!(Description::parse("").is_ok());
    }

    #[test]
    fn notice_kinds_are_screaming_snake_case() {
        assert!(NoticeKind::parse("CREW_DISPATCHED").is_ok());
        assert!(NoticeKind::parse("crew").is_err());
        assert!(NoticeKind::parse("1ABC").is_err());
        assert!(NoticeKind::parse("").is_err());
    }

    #[test]
    fn tracking_numbers_are_normalised() {
        assert_eq!(TrackingNumber::parse("demo-2026-000042").unwrap().as_str(), "DEMO-2026-000042");
        assert!(TrackingNumber::parse("DEMO-26-1").is_err());
        assert!(TrackingNumber::parse("DEMO-2026-x1").is_err());
        assert!(TrackingNumber::parse("'; drop table tickets; --").is_err());
    }
}
