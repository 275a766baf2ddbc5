//! The HTTP API end to end: the real router over a real database (SQLite and PostgreSQL), real
//! registries and the real job runner. One binary, so that it links once.

/// Runs each named test body, an `async fn(postgres: bool)`, once on SQLite and once on PostgreSQL.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(false).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(true).await })*
        }
    };
}

mod admission;
mod admission_review;
mod authorization;
mod catalog;
mod console;
mod garbage;
mod harbor;
mod harness;
mod kube;
mod limits;
mod metrics;
mod openapi;
mod platform;
mod retention;
mod robots;
mod station;
mod station_images;
mod users;
