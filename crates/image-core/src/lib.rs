#![doc = include_str!("../README.md")]

pub mod auth;
pub mod cache;
pub mod catalog;
pub mod copy;
mod digest;
mod error;
pub mod event;
mod id;
pub mod import;
pub mod inventory;
pub mod job;
pub mod kube;
pub mod manifest;
pub mod oci;
pub mod ops;
mod reference;
pub mod registry;
pub mod robot;
pub mod rules;
pub mod station;
pub mod store;
pub mod time_fmt;
pub mod validate;
pub mod workflow;

pub use digest::{Digest, DigestError};
pub use error::{Error, ErrorCode, Result};
pub use reference::{DEFAULT_REGISTRY, Reference, ReferenceError};
pub use time_fmt::{Timestamp, format_rfc3339_millis};
