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

/// One route: its method and its path template, with axum's `{name}` parameters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub method: &'static str,
    pub path: String,
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

    pub(crate) fn get<H: Handler<T, AppState>, T: 'static>(self, path: &str, handler: H) -> Routes {
        self.on("GET", MethodFilter::GET, path, handler)
    }

    pub(crate) fn post<H: Handler<T, AppState>, T: 'static>(self, path: &str, handler: H) -> Routes {
        self.on("POST", MethodFilter::POST, path, handler)
    }

    pub(crate) fn put<H: Handler<T, AppState>, T: 'static>(self, path: &str, handler: H) -> Routes {
        self.on("PUT", MethodFilter::PUT, path, handler)
    }

    pub(crate) fn delete<H: Handler<T, AppState>, T: 'static>(self, path: &str, handler: H) -> Routes {
        self.on("DELETE", MethodFilter::DELETE, path, handler)
    }

    fn on<H: Handler<T, AppState>, T: 'static>(
        mut self,
        method: &'static str,
        filter: MethodFilter,
        path: &str,
        handler: H,
    ) -> Routes {
        let path = format!("{}{path}", self.prefix);
        // axum merges the method routers of one path, and panics on the same method twice.
        self.router = self.router.route(&path, on(filter, handler));
        self.table.push(Route { method, path });
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
        let route = Route { method: "GET", path: "/a/{id}/b/{tag_id}".into() };
        assert_eq!(route.fill(|name| format!("<{name}>")), "/a/<id>/b/<tag_id>");
        let plain = Route { method: "GET", path: "/healthz".into() };
        assert_eq!(plain.fill(|_| unreachable!()), "/healthz");
    }
}
