//! The IAM policy an authorizer returns. API Gateway caches it per token, so
//! it must allow every route the caller may use, not just the one called:
//! exactly the API's routes, on this API and stage only.

use aws_lambda_events::event::apigw::ApiGatewayCustomAuthorizerPolicy;
use aws_lambda_events::event::iam::{IamPolicyEffect, IamPolicyStatement};

/// A route as `METHOD/path`, e.g. `GET/job-status/*` (`*` matches one or
/// more path segments in API Gateway's ARN matching).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("route {0:?} is not METHOD/path (ALLOWED_ROUTES is set by the app stack)")]
    BadRoute(String),
    #[error("methodArn {0:?} is not an execute-api ARN")]
    BadMethodArn(String),
}

impl Route {
    pub fn parse(raw: &str) -> Result<Self, PolicyError> {
        let (method, path) = raw.split_once('/').ok_or_else(|| PolicyError::BadRoute(raw.to_owned()))?;
        let valid_method = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "*"].contains(&method);
        if !valid_method || path.is_empty() || path.contains(char::is_whitespace) {
            return Err(PolicyError::BadRoute(raw.to_owned()));
        }
        Ok(Self(raw.to_owned()))
    }

    /// `ALLOWED_ROUTES`: routes separated by spaces.
    pub fn parse_list(raw: &str) -> Result<Vec<Self>, PolicyError> {
        let routes = raw.split_whitespace().map(Self::parse).collect::<Result<Vec<_>, _>>()?;
        if routes.is_empty() {
            return Err(PolicyError::BadRoute(raw.to_owned()));
        }
        Ok(routes)
    }
}

/// Allow `routes` on the API and stage that `method_arn` belongs to.
pub fn allow(method_arn: &str, routes: &[Route]) -> Result<ApiGatewayCustomAuthorizerPolicy, PolicyError> {
    let bad = || PolicyError::BadMethodArn(method_arn.to_owned());
    // arn:aws:execute-api:<region>:<account>:<apiId>/<stage>/<METHOD>/<path>
    let fields: Vec<&str> = method_arn.splitn(6, ':').collect();
    let [arn, partition, "execute-api", region, account, resource] = fields.as_slice() else {
        return Err(bad());
    };
    let mut segments = resource.splitn(3, '/');
    let (Some(api_id), Some(stage)) = (segments.next(), segments.next()) else {
        return Err(bad());
    };
    if *arn != "arn" || [*partition, *region, *account, api_id, stage].iter().any(|s| s.is_empty()) {
        return Err(bad());
    }
    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".to_owned()];
    statement.effect = IamPolicyEffect::Allow;
    statement.resource = routes
        .iter()
        .map(|r| format!("arn:{partition}:execute-api:{region}:{account}:{api_id}/{stage}/{}", r.0))
        .collect();
    let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
    policy.version = Some("2012-10-17".to_owned());
    policy.statement = vec![statement];
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123/api/POST/submit-job-request";

    #[test]
    fn allows_exactly_the_routes_on_this_api_and_stage() {
        let routes = Route::parse_list("POST/submit-job-request GET/job-status/*").unwrap();
        let policy = allow(ARN, &routes).unwrap();
        let json = serde_json::to_value(&policy).unwrap();
        assert_eq!(json["Version"], "2012-10-17");
        assert_eq!(json["Statement"][0]["Effect"], "Allow");
        assert_eq!(json["Statement"][0]["Action"], serde_json::json!(["execute-api:Invoke"]));
        assert_eq!(
            json["Statement"][0]["Resource"],
            serde_json::json!([
                "arn:aws:execute-api:us-east-1:123456789012:abc123/api/POST/submit-job-request",
                "arn:aws:execute-api:us-east-1:123456789012:abc123/api/GET/job-status/*",
            ])
        );
    }

    #[test]
    fn rejects_malformed_configuration_and_arns() {
        for bad in ["", "submit-job-request", "FETCH/x", "GET/"] {
            assert!(Route::parse_list(bad).is_err(), "{bad:?}");
        }
        let routes = Route::parse_list("GET/x").unwrap();
        for bad in [
            "",
            "arn:aws:lambda:us-east-1:1:function:x",
            "arn:aws:execute-api:us-east-1:1:abc",
            "arn:aws:execute-api:::abc/api/GET/x",
        ] {
            assert!(allow(bad, &routes).is_err(), "{bad:?}");
        }
    }
}
