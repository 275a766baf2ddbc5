//! One module per API profile.

pub mod catalog;
pub mod platform;
