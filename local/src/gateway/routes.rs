//! Matching a request path against the REST API's resources, the way API
//! Gateway prefers them: literal segments over `{param}` over `{proxy+}`.
//! The resources come from the stack at run time; matchit (axum's path
//! matcher) matches them, with those same priorities.

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;

use crate::model::{ApiResource, Method};

#[derive(Debug)]
pub struct RouteMatch<'a> {
    pub resource: &'a ApiResource,
    /// Path parameters, percent-decoded.
    pub params: BTreeMap<String, String>,
}

/// The resources of one REST API as a matchit router (to their index).
pub struct Routes {
    router: matchit::Router<usize>,
}

impl Routes {
    pub fn new(resources: &[ApiResource]) -> Routes {
        let mut router = matchit::Router::new();
        for (i, resource) in resources.iter().enumerate() {
            if let Err(e) = router.insert(template(&resource.path), i) {
                tracing::warn!(path = %resource.path, error = %e, "API resource cannot be routed: ignored");
            }
        }
        Routes { router }
    }

    /// The most specific of `resources` (those `new` was given) whose path
    /// matches `path` (the request path after the stage, e.g.
    /// `/job-status/abc`).
    pub fn find<'a>(&self, resources: &'a [ApiResource], path: &str) -> Option<RouteMatch<'a>> {
        let path = normalized(path);
        let matched = self.router.at(&path).ok()?;
        let resource = resources.get(*matched.value)?;
        let params = matched
            .params
            .iter()
            .map(|(name, value)| (name.to_string(), percent_decode_str(value).decode_utf8_lossy().into_owned()))
            .collect();
        Some(RouteMatch { resource, params })
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// A resource path in matchit's syntax: `{param}` is the same, API
/// Gateway's greedy `{proxy+}` is matchit's catch-all `{*proxy}`.
fn template(path: &str) -> String {
    let segments: Vec<String> = segments(path)
        .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
            Some(name) => format!("{{*{name}}}"),
            None => s.to_string(),
        })
        .collect();
    format!("/{}", segments.join("/"))
}

/// The request path without empty segments, each segment percent-decoded
/// (so that `/job%2Dstatus` is the literal `/job-status`) unless decoding
/// would add a `/` or leave a `%`: those stay encoded for the parameters'
/// own decoding, which is then the only one.
fn normalized(path: &str) -> String {
    let segments: Vec<String> = segments(path)
        .map(|s| match percent_decode_str(s).decode_utf8() {
            Ok(d) if !d.contains(['/', '%']) => d.into_owned(),
            _ => s.to_string(),
        })
        .collect();
    format!("/{}", segments.join("/"))
}

/// The resource's method for `http_method`, else its `ANY` method.
pub fn select_method<'a>(resource: &'a ApiResource, http_method: &str) -> Option<&'a Method> {
    resource
        .methods
        .iter()
        .find(|m| m.http_method.eq_ignore_ascii_case(http_method))
        .or_else(|| resource.methods.iter().find(|m| m.http_method == "ANY"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str, methods: &[&str]) -> ApiResource {
        ApiResource {
            id: path.to_string(),
            path: path.to_string(),
            methods: methods
                .iter()
                .map(|m| Method {
                    address: format!("m.{m}"),
                    http_method: m.to_string(),
                    authorizer_id: None,
                    iam_auth: false,
                    body_models: Default::default(),
                    integration: None,
                })
                .collect(),
        }
    }

    fn api() -> Vec<ApiResource> {
        vec![
            res("/", &["GET"]),
            res("/submit-job-request", &["POST"]),
            res("/job-status", &[]),
            res("/job-status/{jobId}", &["GET"]),
            res("/job-status/latest", &["GET"]),
            res("/files/{proxy+}", &["ANY"]),
        ]
    }

    fn match_route<'a>(resources: &'a [ApiResource], path: &str) -> Option<RouteMatch<'a>> {
        Routes::new(resources).find(resources, path)
    }

    fn path_of(path: &str) -> Option<(String, BTreeMap<String, String>)> {
        let resources = api();
        match_route(&resources, path).map(|m| (m.resource.path.clone(), m.params))
    }

    #[test]
    fn literal_and_parameter_routes() {
        assert_eq!(path_of("/submit-job-request").unwrap().0, "/submit-job-request");
        assert_eq!(path_of("/submit-job-request/").unwrap().0, "/submit-job-request");
        let (p, params) = path_of("/job-status/abc-123").unwrap();
        assert_eq!(p, "/job-status/{jobId}");
        assert_eq!(params["jobId"], "abc-123");
        assert_eq!(path_of("/").unwrap().0, "/");
        assert_eq!(path_of("").unwrap().0, "/");
    }

    #[test]
    fn literal_wins_over_parameter() {
        assert_eq!(path_of("/job-status/latest").unwrap().0, "/job-status/latest");
    }

    #[test]
    fn parameters_are_decoded() {
        assert_eq!(path_of("/job-status/a%20b").unwrap().1["jobId"], "a b");
    }

    #[test]
    fn greedy_parameters() {
        let (p, params) = path_of("/files/a/b/c").unwrap();
        assert_eq!(p, "/files/{proxy+}");
        assert_eq!(params["proxy"], "a/b/c");
        assert!(path_of("/files").is_none());
    }

    #[test]
    fn encoded_separators_stay_in_a_parameter() {
        assert_eq!(path_of("/job-status/a%2Fb").unwrap().1["jobId"], "a/b");
        assert_eq!(path_of("/job-status/a%2520b").unwrap().1["jobId"], "a%20b");
        assert_eq!(path_of("/files/a%2Fb/c%25").unwrap().1["proxy"], "a/b/c%");
    }

    #[test]
    fn encoded_literals_match() {
        assert_eq!(path_of("/job%2Dstatus/latest").unwrap().0, "/job-status/latest");
    }

    #[test]
    fn a_literal_that_leads_nowhere_falls_back_to_the_parameter() {
        let resources = vec![res("/a/{x}/c", &["GET"]), res("/a/b/d", &["GET"])];
        let m = match_route(&resources, "/a/b/c").unwrap();
        assert_eq!((m.resource.path.as_str(), m.params["x"].as_str()), ("/a/{x}/c", "b"));
    }

    #[test]
    fn greedy_and_parameter_siblings() {
        let resources = vec![res("/{proxy+}", &["ANY"]), res("/items/{id}", &["GET"]), res("/items", &["GET"])];
        assert_eq!(match_route(&resources, "/items/1").unwrap().resource.path, "/items/{id}");
        assert_eq!(match_route(&resources, "/items").unwrap().resource.path, "/items");
        let m = match_route(&resources, "/items/1/2").unwrap();
        assert_eq!((m.resource.path.as_str(), m.params["proxy"].as_str()), ("/{proxy+}", "items/1/2"));
        assert_eq!(match_route(&resources, "/other").unwrap().resource.path, "/{proxy+}");
    }

    #[test]
    fn unknown_paths() {
        assert!(path_of("/nope").is_none());
        assert!(path_of("/job-status/a/b").is_none());
        assert!(path_of("/submit-job-requests").is_none());
    }

    #[test]
    fn method_selection() {
        let resources = api();
        let status = match_route(&resources, "/job-status/x").unwrap().resource;
        assert!(select_method(status, "GET").is_some());
        assert!(select_method(status, "get").is_some());
        assert!(select_method(status, "POST").is_none());
        let files = match_route(&resources, "/files/x").unwrap().resource;
        assert_eq!(select_method(files, "DELETE").unwrap().http_method, "ANY");
        let bare = match_route(&resources, "/job-status").unwrap().resource;
        assert!(select_method(bare, "GET").is_none());
    }
}
