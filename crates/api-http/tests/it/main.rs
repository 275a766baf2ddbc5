//! The HTTP API end to end: the real router over a real database (SQLite and PostgreSQL), real
//! registries and the real job runner. One binary, so that it links once.

mod catalog;
mod harness;
mod kube;
mod platform;
