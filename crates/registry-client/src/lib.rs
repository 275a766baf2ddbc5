#![doc = include_str!("../README.md")]

mod admin;
mod auth;
mod blob;
mod browse;
mod client;
mod config;
mod copy;
mod egress;
mod error;
mod harbor;
mod headers;
mod metrics;
mod types;

pub use admin::{DistributionAdmin, InternalCopier};
pub use blob::{BlobStream, ByteStream, digest_of, verify_digest};
pub use client::RegistryClient;
pub use config::{ClientConfig, Credential, RetryPolicy, default_docker_config_path, load_docker_config};
pub use copy::{CopyConfig, CopyEngine};
pub use egress::{Cidr, CidrError, EgressPolicy};
pub use error::{Error, Missing, Result};
pub use harbor::{
    AutoAdmin, HarborAdmin, HarborOptions, NativeReportSummary, VulnerabilitySummary, detect_kind, encode_twice,
    harbor_scan_status, harbor_time, scan_overview_of,
};
pub use headers::RateLimit;
pub use types::{Manifest, ManifestHead, ManifestRef, MountOutcome, Repo, UploadLocation, media_type};
