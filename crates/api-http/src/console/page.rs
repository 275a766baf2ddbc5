//! What every console page shares: the HTML error format, the navigation, and rendering.

use askama::Template;
use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use image_core::{
    Timestamp,
    auth::{Role, User},
};

use crate::{
    auth,
    error::{self, ApiError, ErrorFormat, ProfileError},
    extract,
};

/// Errors as a console page: the status of the error table, a heading and the message; a 401 page carries
/// the sign-in form, so that an expired session is one step from where it was.
#[derive(Debug)]
pub enum HtmlPage {}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorView<'a> {
    title: &'a str,
    message: &'a str,
    status: u16,
    sign_in: bool,
    /// The sign-in form's user name field, empty.
    username: &'a str,
}

impl ErrorFormat for HtmlPage {
    fn render(err: &ApiError) -> Response {
        let view = ErrorView {
            title: err.title(),
            message: &err.message,
            status: err.status().as_u16(),
            sign_in: err.code == error::Code::Unauthorized,
            username: "",
        };
        let mut response = match view.render() {
            Ok(body) => (err.status(), html_headers(), body).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "rendering the console's error page");
                (err.status(), err.message.clone()).into_response()
            }
        };
        error::common_headers(err, &mut response);
        response
    }
}

/// A signed-in caller of a console page.
pub(crate) type Caller = auth::Authenticated<HtmlPage>;
/// An admin caller of a console page.
pub(crate) type AdminCaller = auth::Admin<HtmlPage>;
pub(crate) type Path<T> = extract::PathParams<T, HtmlPage>;
pub(crate) type Query<T> = extract::Query<T, HtmlPage>;
pub(crate) type PageResult = Result<Response, ProfileError<HtmlPage>>;

/// The navigation bar: who is signed in, what they may do, and where they are.
#[derive(Debug, Clone)]
pub(crate) struct Nav {
    pub(crate) user: String,
    pub(crate) is_admin: bool,
    pub(crate) section: &'static str,
}

impl Nav {
    pub(crate) fn new(user: &User, section: &'static str) -> Nav {
        Nav { user: user.username.clone(), is_admin: user.role == Role::Admin, section }
    }

    /// Whether `key` names the section shown.
    pub(crate) fn is_current(&self, key: &str) -> bool {
        key == self.section
    }

    /// Whether two texts are equal (for `selected` options, where templates compare loop items).
    pub(crate) fn same(&self, a: &str, b: &str) -> bool {
        a == b
    }

    /// The sections, as `(path, label, key)`.
    pub(crate) fn links(&self) -> [(&'static str, &'static str, &'static str); 6] {
        [
            ("/console/images", "Catalog", "images"),
            ("/console/approvals", "Approvals", "approvals"),
            ("/console/imports", "Imports", "imports"),
            ("/console/registries", "Registries", "registries"),
            ("/console/nodes", "Nodes", "nodes"),
            ("/console/harbor", "Registry stats", "harbor"),
        ]
    }
}

fn html_headers() -> [(header::HeaderName, HeaderValue); 3] {
    [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        // Only this server's own script and style run on its pages.
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
            ),
        ),
    ]
}

/// A rendered page with status 200.
// The error every handler returns: boxing it here alone would only add a conversion.
#[allow(clippy::result_large_err)]
pub(crate) fn html(view: impl Template) -> PageResult {
    html_with(StatusCode::OK, view)
}

/// A rendered page with `status`.
// The error every handler returns: boxing it here alone would only add a conversion.
#[allow(clippy::result_large_err)]
pub(crate) fn html_with(status: StatusCode, view: impl Template) -> PageResult {
    let body = view.render().map_err(|e| ApiError::internal("rendering a console page", &e))?;
    Ok((status, html_headers(), body).into_response())
}

/// After a form that changed something: the page to look at next (303, so that a reload does not send
/// the form again).
// The error every handler returns: boxing it here alone would only add a conversion.
#[allow(clippy::result_large_err)]
pub(crate) fn see(path: impl AsRef<str>) -> PageResult {
    Ok(Redirect::to(path.as_ref()).into_response())
}

/// `GET /console`: the catalog.
pub(crate) async fn home() -> Response {
    Redirect::to("/console/images").into_response()
}

/// A time as the console shows it: `2026-12-02 14:30 UTC`.
pub(crate) fn when(at: Timestamp) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", at.year(), u8::from(at.month()), at.day(), at.hour(), at.minute())
}

/// An optional time, or a dash.
pub(crate) fn when_opt(at: Option<Timestamp>) -> String {
    at.map_or_else(|| "–".to_owned(), when)
}

/// Bytes in decimal units, as registries show sizes.
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_sizes_read_plainly() {
        let at = time::macros::datetime!(2026-12-02 14:30:59 UTC);
        assert_eq!(when(at), "2026-12-02 14:30 UTC");
        assert_eq!(when_opt(None), "–");
        assert_eq!(size(512), "512 B");
        assert_eq!(size(4_200_000), "4.2 MB");
    }

    #[test]
    fn errors_are_pages_with_their_status() {
        let response = HtmlPage::render(&ApiError::forbidden("this needs the admin role; `u` is a user"));
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        let response = HtmlPage::render(&ApiError::unauthorized("sign in"));
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
}
