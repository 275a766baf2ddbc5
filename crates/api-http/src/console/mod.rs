//! The web console at `/console/…`: server-rendered pages over the same store and domain rules as the
//! JSON profiles, for people in a browser.
//!
//! Every page and form is a route of the table ([`crate::Routes`]) with its [`Access`], so what a user
//! may open and press is what the authorization table says; pages show an admin's buttons to admins
//! only. Sign-in is the cookie session of [`crate::session`], whose Origin/Referer check guards every
//! form sent with it. Errors are HTML pages ([`HtmlPage`]) with the status the error table gives; forms
//! answer bad input with a 4xx page and change nothing. The pages work without JavaScript; the one
//! embedded script ([`assets`]) adds live import progress over server-sent events, partial refreshes,
//! and a banner when the server cannot be reached.

mod approvals;
mod assets;
mod catalog;
mod fleet;
mod form;
mod imports;
mod page;
mod registries;
mod signin;

pub use page::HtmlPage;

use crate::routes::{Access, Routes};

/// What a user may import from the console, as from the platform API.
const APPROVED_ONLY: &str = "images and tags the catalog approves";

pub(crate) fn routes() -> Routes {
    Routes::new("/console")
        .get("", Access::Anyone, page::home)
        .get("/assets/console.css", Access::Anyone, assets::css)
        .get("/assets/console.js", Access::Anyone, assets::js)
        .get("/login", Access::Anyone, signin::form)
        .post("/login", Access::Anyone, signin::sign_in)
        .post("/logout", Access::SignedIn, signin::sign_out)
        .get("/images", Access::SignedIn, catalog::list)
        .post("/images", Access::Admin, catalog::create)
        .get("/images/new", Access::Admin, catalog::new_form)
        .get("/images/{id}", Access::SignedIn, catalog::show)
        .post("/images/{id}", Access::Admin, catalog::update)
        .get("/images/{id}/edit", Access::Admin, catalog::edit_form)
        .post("/images/{id}/delete", Access::Admin, catalog::delete)
        .post("/images/{id}/tags/{tag_id}/recommend", Access::Admin, catalog::recommend)
        .get("/approvals", Access::SignedIn, approvals::list)
        .post("/approvals", Access::SignedIn, approvals::request)
        .post("/approvals/{id}/approve", Access::Admin, approvals::approve)
        .post("/approvals/{id}/reject", Access::Admin, approvals::reject)
        .get("/imports", Access::SignedIn, imports::list)
        .post("/imports", Access::Limited(APPROVED_ONLY), imports::start)
        .get("/imports/{id}", Access::SignedIn, imports::show)
        .post("/imports/{id}/cancel", Access::Admin, imports::cancel)
        .get("/registries", Access::SignedIn, registries::list)
        .post("/registries", Access::Admin, registries::create_secret)
        .post("/repositories", Access::Admin, registries::create_repository)
        .post("/registries/{namespace}/{name}/verify", Access::Admin, registries::verify)
        .post("/repositories/{namespace}/{name}/sync", Access::Admin, registries::sync)
        .get("/nodes", Access::SignedIn, fleet::nodes)
        .get("/harbor", Access::SignedIn, fleet::harbor)
}
