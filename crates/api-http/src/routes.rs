//! A router that remembers what it serves.
//!
//! Every profile registers its routes through [`Routes`], which both adds them to the axum router and
//! writes them into a table. [`crate::routes`] returns that table, so that tests (the generated-garbage
//! test, the authorization table) walk exactly the routes the server has, and a route added without them
//! is one they cover all the same.

use axum::{
    Router,
    handler::Handler,
    routing::{MethodFilter, on},
};

use crate::AppState;

/// Who may call a route: its line in the authorization table (the README's table is rendered from these).
///
/// The handler's extractors enforce it (`Authenticated`, `Admin`); the authorization test walks every route
/// as anonymous, user and admin and checks that they do what the route declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    /// Anyone, signed in or not.
    Anyone,
    /// Any signed-in user.
    SignedIn,
    /// Any signed-in user, within the limit the text names; admins without it.
    Limited(&'static str),
    /// Admins only; a user is answered 403.
    Admin,
    /// Whoever holds the shared secret the text names (a registry's webhook), signed in or not; everyone
    /// else is answered 401.
    Secret(&'static str),
}

impl Access {
    /// The role column of the authorization table.
    pub fn describe(self) -> String {
        match self {
            Access::Anyone => "anyone".into(),
            Access::SignedIn => "user, admin".into(),
            Access::Limited(limit) => format!("user ({limit}), admin"),
            Access::Admin => "admin".into(),
            Access::Secret(secret) => format!("holder of {secret}"),
        }
    }
}

/// One route: its method, its path template (with axum's `{name}` parameters) and who may call it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub method: &'static str,
    pub path: String,
    pub access: Access,
}

impl Route {
    /// The path with each `{parameter}` replaced by `fill(parameter name)`.
    pub fn fill(&self, mut fill: impl FnMut(&str) -> String) -> String {
        let mut out = String::with_capacity(self.path.len());
        let mut rest = self.path.as_str();
        while let Some(start) = rest.find('{') {
            let Some(len) = rest[start..].find('}') else { break };
            out.push_str(&rest[..start]);
            out.push_str(&fill(&rest[start + 1..start + len]));
            rest = &rest[start + len + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// Routes under a common path prefix, and the table of them.
pub(crate) struct Routes {
    prefix: &'static str,
    router: Router<AppState>,
    table: Vec<Route>,
}

impl Routes {
    pub(crate) fn new(prefix: &'static str) -> Routes {
        Routes { prefix, router: Router::new(), table: Vec::new() }
    }

    pub(crate) fn get<H: Handler<T, AppState>, T: 'static>(self, path: &str, access: Access, handler: H) -> Routes {
        self.on("GET", MethodFilter::GET, path, access, handler)
    }

    pub(crate) fn post<H: Handler<T, AppState>, T: 'static>(self, path: &str, access: Access, handler: H) -> Routes {
        self.on("POST", MethodFilter::POST, path, access, handler)
    }

    pub(crate) fn put<H: Handler<T, AppState>, T: 'static>(self, path: &str, access: Access, handler: H) -> Routes {
        self.on("PUT", MethodFilter::PUT, path, access, handler)
    }

    pub(crate) fn delete<H: Handler<T, AppState>, T: 'static>(self, path: &str, access: Access, handler: H) -> Routes {
        self.on("DELETE", MethodFilter::DELETE, path, access, handler)
    }

    fn on<H: Handler<T, AppState>, T: 'static>(
        mut self,
        method: &'static str,
        filter: MethodFilter,
        path: &str,
        access: Access,
        handler: H,
    ) -> Routes {
        let path = format!("{}{path}", self.prefix);
        // axum merges the method routers of one path, and panics on the same method twice.
        self.router = self.router.route(&path, on(filter, handler));
        self.table.push(Route { method, path, access });
        self
    }

    pub(crate) fn merge(mut self, other: Routes) -> Routes {
        self.router = self.router.merge(other.router);
        self.table.extend(other.table);
        self
    }

    pub(crate) fn into_parts(self) -> (Router<AppState>, Vec<Route>) {
        (self.router, self.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_parameters() {
        let route = Route { method: "GET", path: "/a/{id}/b/{tag_id}".into(), access: Access::Admin };
        assert_eq!(route.fill(|name| format!("<{name}>")), "/a/<id>/b/<tag_id>");
        let plain = Route { method: "GET", path: "/healthz".into(), access: Access::Anyone };
        assert_eq!(plain.fill(|_| unreachable!()), "/healthz");
    }
}
