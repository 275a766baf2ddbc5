//! Ids of stored things, one type each, so that one kind of id cannot stand in for another.

/// Declares an id type: a `Copy` wrapper of the `i64` the store assigns, serialised as that number and
/// parsed from it (paths, queries), printed as it.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            /// The id with this number, as the store assigned it.
            pub const fn new(id: i64) -> $name {
                $name(id)
            }

            /// The number, as the store keeps it.
            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&self.0, f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;

            fn from_str(s: &str) -> Result<$name, std::num::ParseIntError> {
                s.parse().map($name)
            }
        }
    };
}

pub(crate) use id_type;

#[cfg(test)]
mod tests {
    id_type!(
        /// An id for the tests.
        TestId
    );

    #[test]
    fn ids_print_parse_and_serialise_as_their_number() {
        let id = TestId::new(42);
        assert_eq!((id.get(), id.to_string()), (42, "42".to_owned()));
        assert_eq!("42".parse::<TestId>(), Ok(id));
        assert!("4x".parse::<TestId>().is_err());
        assert!("".parse::<TestId>().is_err());
        assert_eq!(serde_json::to_string(&id).unwrap(), "42");
        assert_eq!(serde_json::from_str::<TestId>("42").unwrap(), id);
        assert!(serde_json::from_str::<TestId>("\"42\"").is_err());
        assert!(TestId::new(1) < TestId::new(2));
    }
}
