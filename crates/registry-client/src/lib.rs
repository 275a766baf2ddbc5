#![doc = include_str!("../README.md")]

mod auth;
mod blob;
mod client;
mod config;
mod copy;
mod egress;
mod error;
mod headers;
mod metrics;
mod types;

pub use blob::{BlobStream, ByteStream, digest_of, verify_digest};
pub use client::RegistryClient;
pub use config::{ClientConfig, Credential, RetryPolicy, default_docker_config_path, load_docker_config};
pub use copy::{CopyConfig, CopyEngine};
pub use egress::{Cidr, CidrError, EgressPolicy};
pub use error::{Error, Missing, Result};
pub use headers::RateLimit;
pub use types::{Manifest, ManifestHead, ManifestRef, MountOutcome, Repo, UploadLocation, media_type};
