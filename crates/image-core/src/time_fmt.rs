use time::OffsetDateTime;

/// A point in time, always UTC, with microsecond precision (what both storage backends keep).
pub type Timestamp = OffsetDateTime;

/// Formats as `2025-10-17T08:30:00.123Z`, the form JavaScript's `toISOString` produces and the catalog's
/// clients expect.
pub fn format_rfc3339_millis(at: Timestamp) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// Serde adapters for [`Timestamp`] fields.
pub mod serde_millis {
    use super::*;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(at: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_rfc3339_millis(*at))
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(at: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
            match at {
                Some(at) => s.serialize_str(&format_rfc3339_millis(*at)),
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
    }
}
