//! Relay page sizes, one rule for every connection: `first` or `last` from 0 to
//! [`MAX_PAGE_SIZE`], [`DEFAULT_PAGE_SIZE`] when neither is given.

use super::DomainError;

/// The most items one page may hold.
pub const MAX_PAGE_SIZE: u64 = 100;
/// The page size when none is asked for.
pub const DEFAULT_PAGE_SIZE: u64 = 20;

/// Reads a page size given as the argument `name` (`first` or `last`); `None` is the default.
pub fn size(n: Option<i32>, name: &str) -> Result<u64, DomainError> {
    match n {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(n) if n < 0 => Err(DomainError::BadInput(format!("`{name}` must not be negative"))),
        Some(n) if n as u64 > MAX_PAGE_SIZE => {
            Err(DomainError::BadInput(format!("`{name}` must be at most {MAX_PAGE_SIZE}")))
        }
        Some(n) => Ok(n as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_bounded() {
        assert_eq!(size(None, "first").unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(size(Some(0), "first").unwrap(), 0);
        assert_eq!(size(Some(100), "last").unwrap(), 100);
        assert!(matches!(size(Some(101), "first"), Err(DomainError::BadInput(m)) if m.contains("at most 100")));
        assert!(matches!(size(Some(-1), "last"), Err(DomainError::BadInput(m)) if m.contains("`last`")));
    }
}
