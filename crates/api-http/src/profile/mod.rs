//! One module per API profile.

pub(crate) mod admission_review;
pub mod catalog;
pub mod harbor;
pub mod inventory;
pub mod kube;
pub mod platform;
pub(crate) mod progress;
pub mod station;
pub mod webhooks;

/// Extractors and results of the profiles that answer errors as `{"error", "message"}`.
mod plain {
    use crate::{auth, error, extract};

    pub(crate) type Body<T> = extract::Body<T, error::Plain>;
    pub(crate) type Query<T> = extract::Query<T, error::Plain>;
    pub(crate) type Path<T> = extract::PathParams<T, error::Plain>;
    pub(crate) type User = auth::Authenticated<error::Plain>;
    pub(crate) type AdminUser = auth::Admin<error::Plain>;
    pub(crate) type ApiResult<T> = Result<T, error::ProfileError<error::Plain>>;
}

/// What the catalog knows of `reference`, for [`image_core::rules::admit`]: its image, if the catalog has
/// one, and that image's tags.
pub(crate) async fn catalog_entry(
    store: &dyn image_core::store::Store,
    reference: &image_core::Reference,
) -> image_core::Result<(Option<image_core::catalog::CatalogImage>, Vec<image_core::catalog::Tag>)> {
    let (namespace, name) = split_repository(reference.repository());
    let image = store.find_image(reference.registry(), namespace, name).await?;
    let tags = match &image {
        Some(image) => store.list_tags(image.id).await?,
        None => Vec::new(),
    };
    Ok((image, tags))
}

/// Files an approval request for `reference` on behalf of `actor`, with `notes` saying what asked.
pub(crate) async fn request_approval(
    store: &dyn image_core::store::Store,
    reference: &image_core::Reference,
    notes: String,
    actor: &str,
) -> image_core::Result<image_core::catalog::ApprovalRequest> {
    let (namespace, name) = split_repository(reference.repository());
    let request = image_core::catalog::NewApprovalRequest::new(
        name,
        Some(reference.registry()),
        Some(namespace),
        reference.tag().map(str::to_owned),
        Some(notes),
    )?;
    store.create_approval_request(request, actor).await
}

/// `library/redis` → (`library`, `redis`); `app` → (``, `app`).
fn split_repository(repository: &str) -> (&str, &str) {
    repository.rsplit_once('/').unwrap_or(("", repository))
}
