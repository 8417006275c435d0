//! Matching a request path against the REST API's resources, the way API
//! Gateway prefers them: literal segments over `{param}` over `{proxy+}`.

use std::collections::BTreeMap;

use crate::httpx::percent_decode;
use crate::model::{ApiResource, Method};

#[derive(Debug)]
pub struct RouteMatch<'a> {
    pub resource: &'a ApiResource,
    /// Path parameters, percent-decoded.
    pub params: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Literal,
    Param,
    Greedy,
}

fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// The most specific resource whose path matches `path` (the request path
/// after the stage, e.g. `/job-status/abc`).
pub fn match_route<'a>(resources: &'a [ApiResource], path: &str) -> Option<RouteMatch<'a>> {
    let request = segments(path);
    let mut best: Option<(Vec<Rank>, RouteMatch<'a>)> = None;
    for resource in resources {
        let template = segments(&resource.path);
        let Some((ranks, params)) = match_segments(&template, &request) else { continue };
        if best.as_ref().is_none_or(|(b, _)| ranks < *b) {
            best = Some((ranks, RouteMatch { resource, params }));
        }
    }
    best.map(|(_, m)| m)
}

fn match_segments(template: &[&str], request: &[&str]) -> Option<(Vec<Rank>, BTreeMap<String, String>)> {
    let mut ranks = Vec::new();
    let mut params = BTreeMap::new();
    for (i, t) in template.iter().enumerate() {
        if let Some(name) = t.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
            // Greedy: the last template segment, one or more request segments.
            if i != template.len() - 1 || request.len() <= i {
                return None;
            }
            params
                .insert(name.to_string(), request[i..].iter().map(|s| percent_decode(s)).collect::<Vec<_>>().join("/"));
            ranks.push(Rank::Greedy);
            return Some((ranks, params));
        }
        let segment = request.get(i)?;
        if let Some(name) = t.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            params.insert(name.to_string(), percent_decode(segment));
            ranks.push(Rank::Param);
        } else if *t == *segment || *t == percent_decode(segment) {
            ranks.push(Rank::Literal);
        } else {
            return None;
        }
    }
    (template.len() == request.len()).then_some((ranks, params))
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
