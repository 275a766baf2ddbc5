//! The authorization table: every route of every profile, called as anonymous, as a user and as an admin,
//! answers as its declared [`Access`] says; and the README's table is the one the routes declare.
//!
//! Each call carries a harmless body (`{}`) and a fresh token, so that no call depends on another (a
//! revoked token, a deleted record). What is checked is who gets through the door: 401 for anonymous
//! callers of a signed-in route, 403 for users on an admin route, and for everyone allowed in neither.

use api_http::{Access, Route, auth};
use axum::http::StatusCode;
use image_core::auth::Role;

use crate::harness::TestApp;

/// Where the README's table starts and ends.
const TABLE_START: &str = "<!-- authorization table: generated from api_http::routes(); run the authorization test with IMAGEGATE_BLESS=1 to update -->";
const TABLE_END: &str = "<!-- end of the authorization table -->";

/// A value for a path parameter that names something plausible (or nothing) without being malformed.
fn parameter(name: &str) -> String {
    match name {
        "namespace" => "default".into(),
        "name" => "nothing-here".into(),
        _ => "1".into(),
    }
}

/// The table as the README shows it.
fn render(routes: &[Route]) -> String {
    let mut out = String::from("| method | path | who may call it |\n|---|---|---|\n");
    for route in routes {
        out.push_str(&format!("| `{}` | `{}` | {} |\n", route.method, route.path, route.access.describe()));
    }
    out
}

#[test]
fn the_readme_shows_the_routes_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let start =
        readme.find(TABLE_START).expect("the README has the authorization table's start marker") + TABLE_START.len();
    let end = readme.find(TABLE_END).expect("the README has the authorization table's end marker");
    let table = render(&api_http::routes());
    let current = readme[start..end].trim();
    if current != table.trim() {
        if std::env::var_os("IMAGEGATE_BLESS").is_some() {
            let updated = format!("{}\n{}{}", &readme[..start], table, &readme[end..]);
            std::fs::write(&path, updated).unwrap();
            return;
        }
        panic!(
            "the README's authorization table differs from the routes; run with IMAGEGATE_BLESS=1 to write:\n{table}"
        );
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    User,
    Admin,
}

/// A new token for `username`, so that a call that revokes its own token revokes nobody else's.
async fn fresh_token(app: &TestApp, username: &str) -> String {
    let user = app.store.find_credentials(username).await.unwrap().expect("the user exists").user;
    let (token, hash) = auth::new_token();
    app.store.create_token(user.id, &hash, "authorization test", None).await.unwrap();
    token
}

/// What `caller` may be answered on a route with `access`; `None` when the answer is right.
fn wrong_answer(access: Access, caller: Caller, status: StatusCode) -> Option<&'static str> {
    let refused_sign_in = status == StatusCode::UNAUTHORIZED;
    let refused_role = status == StatusCode::FORBIDDEN;
    match (access, caller) {
        (Access::Secret(_), _) if !refused_sign_in => Some("callers without the secret must get 401"),
        (Access::Secret(_), _) => None,
        (Access::Anyone, _) if refused_sign_in || refused_role => Some("anyone may call it"),
        (Access::Anyone, _) => None,
        (_, Caller::Anonymous) if !refused_sign_in => Some("anonymous callers must get 401"),
        (_, Caller::Anonymous) => None,
        (Access::Admin, Caller::User) if !refused_role => Some("users must get 403"),
        (Access::SignedIn, Caller::User) if refused_sign_in || refused_role => Some("users may call it"),
        // A limited route lets users in; the handler may then refuse what is beyond the limit with 403.
        (Access::Limited(_), Caller::User) if refused_sign_in => Some("users may call it, within its limit"),
        (_, Caller::Admin) if refused_sign_in || refused_role => Some("admins may call it"),
        _ => None,
    }
}

async fn every_route_answers_as_its_table_row_says(postgres: bool) {
    let target = test_support::Distribution::start().await;
    let app = TestApp::with_registry(postgres, &target, "").await;
    app.user_token("ursula").await;
    let admin = app.store.find_credentials("admin").await.unwrap().unwrap().user;
    assert_eq!(admin.role, Role::Admin);

    let routes = api_http::routes();
    let mut checked = 0;
    let mut failures = Vec::new();
    for route in &routes {
        let path = route.fill(parameter);
        for caller in [Caller::Anonymous, Caller::User, Caller::Admin] {
            let token = match caller {
                Caller::Anonymous => None,
                Caller::User => Some(fresh_token(&app, "ursula").await),
                Caller::Admin => Some(fresh_token(&app, "admin").await),
            };
            let body = (route.method == "POST" || route.method == "PUT").then(|| "{}".to_owned());
            let (status, answer) = app.send(route.method, &path, body, token.as_deref()).await;
            checked += 1;
            if let Some(why) = wrong_answer(route.access, caller, status) {
                failures.push(format!("{} {} as {caller:?} → {status} {answer}: {why}", route.method, path));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {checked} cells are wrong:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(checked, routes.len() * 3);
}

on_both_backends!(every_route_answers_as_its_table_row_says);

#[test]
fn the_check_itself_tells_right_from_wrong() {
    use StatusCode as S;
    assert!(wrong_answer(Access::Admin, Caller::User, S::BAD_REQUEST).is_some());
    assert!(wrong_answer(Access::Secret("x"), Caller::Admin, S::ACCEPTED).is_some());
    assert!(wrong_answer(Access::Secret("x"), Caller::Anonymous, S::UNAUTHORIZED).is_none());
    assert!(wrong_answer(Access::Admin, Caller::User, S::FORBIDDEN).is_none());
    assert!(wrong_answer(Access::Admin, Caller::Anonymous, S::FORBIDDEN).is_some());
    assert!(wrong_answer(Access::SignedIn, Caller::User, S::FORBIDDEN).is_some());
    assert!(wrong_answer(Access::Limited("x"), Caller::User, S::FORBIDDEN).is_none());
    assert!(wrong_answer(Access::Limited("x"), Caller::Admin, S::FORBIDDEN).is_some());
    assert!(wrong_answer(Access::Anyone, Caller::Anonymous, S::UNAUTHORIZED).is_some());
    assert!(wrong_answer(Access::SignedIn, Caller::Admin, S::NOT_FOUND).is_none());
}
