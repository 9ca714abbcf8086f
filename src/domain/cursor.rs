//! Opaque list cursors: a place in a list ordered by a timestamp, then an id, tagged with the
//! list (and order) it belongs to, so a cursor of one list is refused by another.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::DomainError;

/// Encodes a place as `base64url("{tag}|{micros}|{id}")`.
pub fn encode(tag: &str, at: DateTime<Utc>, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{tag}|{}|{id}", at.timestamp_micros()))
}

/// Decodes a place encoded with the same `tag`.
pub fn decode(tag: &str, text: &str) -> Result<(DateTime<Utc>, Uuid), DomainError> {
    let bad = || DomainError::BadInput("the cursor is not one this list handed out".into());
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let rest = text.strip_prefix(tag).and_then(|r| r.strip_prefix('|')).ok_or_else(bad)?;
    let (micros, id) = rest.split_once('|').ok_or_else(bad)?;
    let at = DateTime::from_timestamp_micros(micros.parse().map_err(|_| bad())?).ok_or_else(bad)?;
    Ok((at, Uuid::parse_str(id).map_err(|_| bad())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_only_within_their_list() {
        let (at, id) = (Utc::now(), Uuid::new_v4());
        let text = encode("p1", at, id);
        let (back_at, back_id) = decode("p1", &text).unwrap();
        assert_eq!((back_at.timestamp_micros(), back_id), (at.timestamp_micros(), id));
        assert!(decode("ph1", &text).is_err());
        assert!(decode("p", &text).is_err());
        assert!(decode("p1", "%%%").is_err());
        assert!(decode("p1", &URL_SAFE_NO_PAD.encode("p1|x|y")).is_err());
    }
}
