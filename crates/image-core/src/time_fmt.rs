use time::OffsetDateTime;

/// A point in time, always UTC, with microsecond precision (what both storage backends keep).
pub type Timestamp = OffsetDateTime;

/// Formats as `2025-10-17T08:30:00.123Z`, the form JavaScript's `toISOString` produces and the catalog's
/// clients expect.
pub fn format_rfc3339_millis(at: Timestamp) -> String {
    Rfc3339Millis::new(at).as_str().to_owned()
}

/// [`format_rfc3339_millis`]'s text, without an allocation: listings write thousands of timestamps a second.
struct Rfc3339Millis {
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, ASCII.
    text: [u8; 24],
}

impl Rfc3339Millis {
    fn new(at: Timestamp) -> Rfc3339Millis {
        let at = at.to_offset(time::UtcOffset::UTC);
        let mut text = *b"0000-00-00T00:00:00.000Z";
        // `time` keeps years within ±9999; the catalog's are all after 1970.
        let year = u32::try_from(at.year()).unwrap_or(0).min(9999);
        let fields = [
            (0..4, year),
            (5..7, u32::from(u8::from(at.month()))),
            (8..10, u32::from(at.day())),
            (11..13, u32::from(at.hour())),
            (14..16, u32::from(at.minute())),
            (17..19, u32::from(at.second())),
            (20..23, u32::from(at.millisecond())),
        ];
        for (range, mut value) in fields {
            for digit in text[range].iter_mut().rev() {
                *digit = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        Rfc3339Millis { text }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.text).expect("ASCII digits and separators")
    }
}

/// Serde adapters for [`Timestamp`] fields.
pub mod serde_millis {
    use super::*;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(at: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(Rfc3339Millis::new(*at).as_str())
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(at: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
            match at {
                Some(at) => s.serialize_str(Rfc3339Millis::new(*at).as_str()),
                None => s.serialize_none(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_to_iso_string() {
        let at = time::macros::datetime!(2025-10-17 08:30:05.123456 UTC);
        assert_eq!(format_rfc3339_millis(at), "2025-10-17T08:30:05.123Z");
        let at = time::macros::datetime!(2025-01-02 03:04:05 +02:00);
        assert_eq!(format_rfc3339_millis(at), "2025-01-02T01:04:05.000Z");
        let at = time::macros::datetime!(0999-12-31 23:59:59.999 UTC);
        assert_eq!(format_rfc3339_millis(at), "0999-12-31T23:59:59.999Z");
    }
}
