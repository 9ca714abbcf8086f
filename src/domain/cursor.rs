//! Opaque list cursors: a place in a list ordered by a timestamp, then an id, tagged with the
//! list (and order) it belongs to, so a cursor of one list is refused by another.

use std::marker::PhantomData;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::DomainError;

/// A row of a list that pages by creation time, then id.
pub trait Listed {
    /// Names the list in its cursors (a cursor of another list is refused).
    const TAG: &'static str;
    fn place(&self) -> (DateTime<Utc>, Uuid);
}

/// A place in a list of `T` (by creation time, then id). Opaque to clients.
#[derive(Debug)]
pub struct Place<T> {
    created_at: DateTime<Utc>,
    id: Uuid,
    list: PhantomData<fn() -> T>,
}

impl<T> Clone for Place<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Place<T> {}

impl<T> PartialEq for Place<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.created_at, self.id) == (other.created_at, other.id)
    }
}

impl<T> Eq for Place<T> {}

impl<T> Place<T> {
    /// The rows after this place in a list ordered by `created_at` then `id`, ascending or
    /// (`newest_first`) descending.
    pub fn after<C: sea_orm::ColumnTrait>(&self, created_at: C, id: C, newest_first: bool) -> sea_orm::Condition {
        let (at, id_value) = (self.created_at, self.id);
        let beyond = |c: C, v: sea_orm::Value| if newest_first { c.lt(v) } else { c.gt(v) };
        sea_orm::Condition::any()
            .add(beyond(created_at, at.into()))
            .add(sea_orm::Condition::all().add(created_at.eq(at)).add(beyond(id, id_value.into())))
    }
}

impl<T: Listed> Place<T> {
    pub fn of(row: &T) -> Self {
        let (created_at, id) = row.place();
        Place { created_at, id, list: PhantomData }
    }

    pub fn encode(&self) -> String {
        encode(T::TAG, self.created_at, self.id)
    }

    pub fn decode(text: &str) -> Result<Self, DomainError> {
        let (created_at, id) = decode(T::TAG, text)?;
        Ok(Place { created_at, id, list: PhantomData })
    }
}

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

    proptest::proptest! {
        #[test]
        fn any_text_decodes_or_is_refused_without_panicking(text in ".{0,300}") {
            let _ = decode("t1", &text);
        }

        #[test]
        fn any_bytes_behind_base64_decode_or_are_refused(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = decode("t1", &URL_SAFE_NO_PAD.encode(&bytes));
        }

        #[test]
        fn every_place_round_trips(micros in -62_135_596_800_000_000i64..253_402_300_799_000_000, id in proptest::num::u128::ANY) {
            let at = DateTime::from_timestamp_micros(micros).unwrap();
            let id = Uuid::from_u128(id);
            let (back_at, back_id) = decode("t1", &encode("t1", at, id)).unwrap();
            proptest::prop_assert_eq!((back_at, back_id), (at, id));
            proptest::prop_assert!(decode("p1", &encode("t1", at, id)).is_err());
        }
    }
}
