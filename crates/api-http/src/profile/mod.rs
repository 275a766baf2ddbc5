//! One module per API profile.

pub mod catalog;
