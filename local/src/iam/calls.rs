//! What a request asks IAM for: the action(s) and resource ARN(s) the
//! service authorizes it on, and the access key that signed it.

use hyper::header::HeaderMap;
use hyper::{Method, Uri};
use serde_json::Value;

/// One authorization IAM makes for a request (a request may need several:
/// a transaction on two tables, a copy reading its source).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Call {
    pub action: String,
    pub resource: String,
}

impl Call {
    fn new(action: impl Into<String>, resource: impl Into<String>) -> Call {
        Call { action: action.into(), resource: resource.into() }
    }
}

/// Where the request's identity comes from.
pub struct Scope<'a> {
    pub region: &'a str,
    pub account_id: &'a str,
    /// The full ARNs of the account's secrets: a call may name a secret by
    /// its name or a partial ARN, and is authorized on the full one.
    pub secret_arns: &'a [String],
}

/// The access key id of a SigV4 request: `Authorization: AWS4-HMAC-SHA256
/// Credential=<AKID>/<date>/...` or, presigned, `X-Amz-Credential`. The
/// signature is not verified.
pub fn access_key(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    if let Some(auth) = headers.get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let credential = auth.split_once("Credential=")?.1;
        return credential.split(['/', ',', ' ']).next().filter(|k| !k.is_empty()).map(str::to_string);
    }
    let query = uri.query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k.eq_ignore_ascii_case("X-Amz-Credential"))
        .and_then(|(_, v)| v.split('/').next().filter(|k| !k.is_empty()).map(str::to_string))
}

/// The calls of one request to `service` (`sqs`, `dynamodb`, `s3`, `sts`,
/// `events`, `secretsmanager`). An
/// empty list means there is nothing to authorize: a request too malformed
/// to name its operation, which the service rejects anyway.
pub fn derive(service: &str, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8], scope: &Scope) -> Vec<Call> {
    let mut calls = match service {
        "dynamodb" => dynamodb(headers, body, scope),
        "sqs" => sqs(uri, headers, body, scope),
        "s3" => s3(method, uri, headers, body),
        "sts" => sts(body),
        "events" => events(headers, body, scope),
        "secretsmanager" => secretsmanager(headers, body, scope),
        _ => Vec::new(),
    };
    calls.sort();
    calls.dedup();
    calls
}

fn target<'h>(headers: &'h HeaderMap, prefix: &str) -> Option<&'h str> {
    headers.get("x-amz-target").and_then(|v| v.to_str().ok()).and_then(|t| t.strip_prefix(prefix))
}

fn dynamodb(headers: &HeaderMap, body: &[u8], scope: &Scope) -> Vec<Call> {
    let Some(op) = target(headers, "DynamoDB_20120810.") else { return Vec::new() };
    let Ok(body) = serde_json::from_slice::<Value>(body) else { return Vec::new() };
    let table = |name: &str| {
        if name.starts_with("arn:") {
            name.to_string()
        } else {
            format!("arn:aws:dynamodb:{}:{}:table/{name}", scope.region, scope.account_id)
        }
    };
    let str_of = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let action = |a: &str| format!("dynamodb:{a}");
    match op {
        // A transaction is authorized item by item, with each item's action.
        "TransactWriteItems" | "TransactGetItems" => body
            .get("TransactItems")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|item| {
                let (kind, inner) = item.as_object()?.iter().next()?;
                let item_action = match kind.as_str() {
                    "Put" => "PutItem",
                    "Update" => "UpdateItem",
                    "Delete" => "DeleteItem",
                    "ConditionCheck" => "ConditionCheckItem",
                    "Get" => "GetItem",
                    _ => return None,
                };
                Some(Call::new(action(item_action), table(&str_of(inner, "TableName")?)))
            })
            .collect(),
        // Batches have actions of their own, checked on every table named.
        "BatchGetItem" | "BatchWriteItem" => body
            .get("RequestItems")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.keys())
            .map(|t| Call::new(action(op), table(t)))
            .collect(),
        _ => {
            let resource = match (str_of(&body, "TableName"), str_of(&body, "IndexName")) {
                (Some(t), Some(i)) => format!("{}/index/{i}", table(&t)),
                (Some(t), None) => table(&t),
                (None, _) => "*".into(),
            };
            vec![Call::new(action(op), resource)]
        }
    }
}

/// A request's parameters by name.
type Params = Box<dyn Fn(&str) -> Option<String>>;

/// SQS's batch operations are authorized as their single-message action.
fn sqs_action(op: &str) -> String {
    let base = match op {
        "SendMessageBatch" => "SendMessage",
        "DeleteMessageBatch" => "DeleteMessage",
        "ChangeMessageVisibilityBatch" => "ChangeMessageVisibility",
        other => other,
    };
    format!("sqs:{base}")
}

fn sqs(uri: &Uri, headers: &HeaderMap, body: &[u8], scope: &Scope) -> Vec<Call> {
    let queue_arn = |account: &str, name: &str| format!("arn:aws:sqs:{}:{account}:{name}", scope.region);
    // A queue URL's path is /<account>/<name>.
    let from_url = |url: &str| -> Option<String> {
        let path = url.split_once("://").map(|(_, rest)| rest.split_once('/').map_or("", |(_, p)| p)).unwrap_or(url);
        let mut segments = path.trim_matches('/').rsplit('/');
        let name = segments.next().filter(|n| !n.is_empty())?;
        let account = segments.next().unwrap_or(scope.account_id);
        Some(queue_arn(account, name))
    };
    // The JSON protocol (the SDKs since 2023) and the older Query protocol.
    let (op, params): (String, Params) = if let Some(op) = target(headers, "AmazonSQS.") {
        let Ok(body) = serde_json::from_slice::<Value>(body) else { return Vec::new() };
        (op.to_string(), Box::new(move |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string)))
    } else {
        let form: Vec<(String, String)> = form_urlencoded::parse(body)
            .chain(form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let Some(op) = form.iter().find(|(k, _)| k == "Action").map(|(_, v)| v.clone()) else { return Vec::new() };
        let path_queue = (uri.path().trim_matches('/').contains('/')).then(|| uri.path().to_string());
        (
            op,
            Box::new(move |k: &str| {
                form.iter()
                    .find(|(name, _)| name == k)
                    .map(|(_, v)| v.clone())
                    .or_else(|| if k == "QueueUrl" { path_queue.clone() } else { None })
            }),
        )
    };
    let resource = match op.as_str() {
        "GetQueueUrl" | "CreateQueue" => params("QueueName")
            .map(|name| queue_arn(params("QueueOwnerAWSAccountId").as_deref().unwrap_or(scope.account_id), &name)),
        "ListQueues" => Some("*".to_string()),
        _ => params("QueueUrl").and_then(|u| from_url(&u)),
    };
    vec![Call::new(sqs_action(&op), resource.unwrap_or_else(|| "*".into()))]
}

/// STS's Query protocol: `Action=AssumeRole&RoleArn=...` (the only STS call
/// the functions make); other actions need no resource.
/// EventBridge (JSON protocol, `X-Amz-Target: AWSEvents.<Op>`). PutEvents
/// is authorized on each entry's bus (`EventBusName`, a name or an ARN; the
/// account's `default` bus without one); other operations on the bus or
/// rule they name, else on the default bus.
fn events(headers: &HeaderMap, body: &[u8], scope: &Scope) -> Vec<Call> {
    let Some(op) = target(headers, "AWSEvents.") else { return Vec::new() };
    let Ok(body) = serde_json::from_slice::<Value>(body) else { return Vec::new() };
    let bus = |name: Option<&str>| match name.unwrap_or("default") {
        arn if arn.starts_with("arn:") => arn.to_string(),
        name => format!("arn:aws:events:{}:{}:event-bus/{name}", scope.region, scope.account_id),
    };
    let action = format!("events:{op}");
    match op {
        "PutEvents" => body
            .get("Entries")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|entry| Call::new(&action, bus(entry.get("EventBusName").and_then(Value::as_str))))
            .collect(),
        _ => {
            let name = body.get("EventBusName").or_else(|| body.get("Name")).and_then(Value::as_str);
            vec![Call::new(action, bus(name))]
        }
    }
}

/// Secrets Manager (JSON protocol, `X-Amz-Target: secretsmanager.<Op>`): an
/// operation on a secret is authorized on its full ARN, whichever form
/// `SecretId` names it by; CreateSecret on the ARN its `Name` will have;
/// the others (ListSecrets, GetRandomPassword) on `*`.
fn secretsmanager(headers: &HeaderMap, body: &[u8], scope: &Scope) -> Vec<Call> {
    let Some(op) = target(headers, "secretsmanager.") else { return Vec::new() };
    let Ok(body) = serde_json::from_slice::<Value>(body) else { return Vec::new() };
    let field = |k: &str| body.get(k).and_then(Value::as_str);
    let resource = match (field("SecretId"), field("Name")) {
        (Some(id), _) => secret_arn(id, scope),
        (None, Some(name)) if op == "CreateSecret" => secret_arn(name, scope),
        _ => "*".to_string(),
    };
    vec![Call::new(format!("secretsmanager:{op}"), resource)]
}

/// The full ARN of the secret `id` names: its full ARN, a partial ARN
/// (without the `-` and 6 random characters Secrets Manager appends) or
/// its name. An id no secret of the account answers to is read as a name
/// or ARN as written, which no statement naming the stack's secrets matches.
fn secret_arn(id: &str, scope: &Scope) -> String {
    // `…:secret:<name>-abcdef` → `…:secret:<name>`.
    let partial = |arn: &str| match arn.len().checked_sub(7) {
        Some(i) if arn.as_bytes().get(i) == Some(&b'-') => arn[..i].to_string(),
        _ => arn.to_string(),
    };
    let name = |arn: &str| partial(arn).split_once(":secret:").map(|(_, n)| n.to_string()).unwrap_or_default();
    match scope.secret_arns.iter().find(|arn| *arn == id || partial(arn) == id || name(arn) == id) {
        Some(arn) => arn.clone(),
        None if id.starts_with("arn:") => id.to_string(),
        None => format!("arn:aws:secretsmanager:{}:{}:secret:{id}", scope.region, scope.account_id),
    }
}

fn sts(body: &[u8]) -> Vec<Call> {
    let params: std::collections::HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    match params.get("Action").map(String::as_str) {
        Some("AssumeRole") => {
            vec![Call { action: "sts:AssumeRole".into(), resource: params.get("RoleArn").cloned().unwrap_or_default() }]
        }
        Some(other) => vec![Call { action: format!("sts:{other}"), resource: "*".into() }],
        None => Vec::new(),
    }
}

/// The session STS issued in an AssumeRole answer (XML): its access key and expiry.
pub fn assumed_session(xml: &str) -> Option<(String, std::time::SystemTime)> {
    let field = |name: &str| -> Option<String> {
        let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
        let end = start + xml[start..].find(&format!("</{name}>"))?;
        Some(xml[start..end].trim().to_string())
    };
    let key = field("AccessKeyId")?;
    let expiration =
        time::OffsetDateTime::parse(&field("Expiration")?, &time::format_description::well_known::Rfc3339).ok()?;
    let expires_at = std::time::SystemTime::UNIX_EPOCH
        + std::time::Duration::from_secs(u64::try_from(expiration.unix_timestamp()).ok()?);
    Some((key, expires_at))
}

/// S3, path-style (`/<bucket>/<key>`, what the functions' clients use
/// against a custom endpoint) or virtual-hosted (`<bucket>.<host>`).
fn s3(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Vec<Call> {
    let (bucket, key) = s3_bucket_and_key(uri, headers);
    let query: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).into_owned().collect();
    if bucket.is_empty() {
        return vec![Call::new("s3:ListAllMyBuckets", "*")];
    }
    let bucket_arn = format!("arn:aws:s3:::{bucket}");
    if key.is_empty() {
        return s3_bucket_calls(method, &query, bucket_arn, body);
    }
    s3_object_calls(method, &query, headers, format!("{bucket_arn}/{key}"))
}

/// The bucket and key a request names: from the host when it is
/// virtual-hosted (a name, not an address or `localhost`), else from the
/// path. Either may be empty.
fn s3_bucket_and_key(uri: &Uri, headers: &HeaderMap) -> (String, String) {
    let host = headers.get(hyper::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, port)| if port.parse::<u16>().is_ok() { h } else { host });
    let path = percent_encoding::percent_decode_str(uri.path()).decode_utf8_lossy().into_owned();
    let virtual_bucket = (host.parse::<std::net::IpAddr>().is_err() && host != "localhost" && !host.is_empty())
        .then(|| host.split('.').next().unwrap_or_default().to_string());
    match virtual_bucket {
        Some(b) => (b, path.trim_start_matches('/').to_string()),
        None => {
            let rest = path.trim_start_matches('/');
            let (b, k) = rest.split_once('/').unwrap_or((rest, ""));
            (b.to_string(), k.to_string())
        }
    }
}

fn has_param(query: &[(String, String)], name: &str) -> bool {
    query.iter().any(|(k, _)| k == name)
}

/// The calls of a request on a bucket itself (no key).
fn s3_bucket_calls(method: &Method, query: &[(String, String)], bucket_arn: String, body: &[u8]) -> Vec<Call> {
    let has = |k: &str| has_param(query, k);
    let action = match *method {
        Method::GET | Method::HEAD if has("versions") => "ListBucketVersions".to_string(),
        Method::GET if has("uploads") => "ListBucketMultipartUploads".to_string(),
        Method::GET if has("location") => "GetBucketLocation".to_string(),
        Method::POST if has("delete") => {
            // DeleteObjects is authorized as DeleteObject on each key; a
            // body that names no keys readably is checked against every key
            // (S3 then refuses it), never against none.
            let keys = delete_objects_keys(body).unwrap_or_else(|| vec!["*".to_owned()]);
            return keys.into_iter().map(|k| Call::new("s3:DeleteObject", format!("{bucket_arn}/{k}"))).collect();
        }
        _ => match bucket_subresource(query) {
            Some(sub) => bucket_subresource_action(method, &sub),
            None => match *method {
                Method::PUT => "CreateBucket".into(),
                Method::DELETE => "DeleteBucket".into(),
                _ => "ListBucket".into(),
            },
        },
    };
    vec![Call::new(format!("s3:{action}"), bucket_arn)]
}

/// The action (without `s3:`) that reads, writes or deletes a bucket
/// subresource (`Policy`, `Lifecycle`, ...).
fn bucket_subresource_action(method: &Method, sub: &str) -> String {
    let verb = match *method {
        Method::GET | Method::HEAD => "Get",
        Method::DELETE => "Delete",
        _ => "Put",
    };
    match (verb, sub) {
        (_, "Lifecycle") => format!("{verb}LifecycleConfiguration"),
        ("Delete", "Policy") => "DeleteBucketPolicy".into(),
        ("Delete", _) => format!("Put{}", bucket_action_name(sub)),
        _ => format!("{verb}{}", bucket_action_name(sub)),
    }
}

/// The calls of a request on an object: its action, and a copy's read of
/// its source.
fn s3_object_calls(method: &Method, query: &[(String, String)], headers: &HeaderMap, object_arn: String) -> Vec<Call> {
    let has = |k: &str| has_param(query, k);
    let versioned = has("versionId");
    let action = match *method {
        Method::GET | Method::HEAD if has("tagging") => "GetObjectTagging",
        Method::GET | Method::HEAD if has("acl") => "GetObjectAcl",
        Method::GET if has("uploadId") => "ListMultipartUploadParts",
        Method::GET | Method::HEAD if versioned => "GetObjectVersion",
        Method::GET | Method::HEAD => "GetObject",
        Method::PUT if has("tagging") => "PutObjectTagging",
        Method::PUT if has("acl") => "PutObjectAcl",
        Method::DELETE if has("uploadId") => "AbortMultipartUpload",
        Method::DELETE if has("tagging") => "DeleteObjectTagging",
        Method::DELETE if versioned => "DeleteObjectVersion",
        Method::DELETE => "DeleteObject",
        // PUT, multipart create/upload part/complete (POST): all PutObject.
        _ => "PutObject",
    };
    let mut calls = vec![Call::new(format!("s3:{action}"), object_arn)];
    // A copy also reads its source.
    if let Some(source) = headers.get("x-amz-copy-source").and_then(|v| v.to_str().ok()) {
        let source = percent_encoding::percent_decode_str(source).decode_utf8_lossy().into_owned();
        let source = source.split_once("?versionId=").map_or(source.as_str(), |(s, _)| s);
        calls.push(Call::new("s3:GetObject", format!("arn:aws:s3:::{}", source.trim_start_matches('/'))));
    }
    calls
}

/// The query parameter naming a bucket subresource, capitalized
/// (`policy` → `Policy`); list parameters (`prefix`, ...) are none.
fn bucket_subresource(query: &[(String, String)]) -> Option<String> {
    const SUBRESOURCES: [&str; 13] = [
        "policy",
        "notification",
        "tagging",
        "versioning",
        "lifecycle",
        "cors",
        "encryption",
        "acl",
        "website",
        "logging",
        "replication",
        "ownershipControls",
        "publicAccessBlock",
    ];
    query.iter().map(|(k, _)| k.as_str()).find(|k| SUBRESOURCES.contains(k)).map(|k| {
        let mut c = k.chars();
        c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
    })
}

/// The IAM action suffix for a bucket subresource (`Get` + it).
fn bucket_action_name(sub: &str) -> String {
    match sub {
        "Notification" => "BucketNotification".into(),
        "Encryption" => "EncryptionConfiguration".into(),
        other => format!("Bucket{other}"),
    }
}

/// The keys a DeleteObjects body names (`<Delete><Object><Key>`), read as
/// XML (entities, character references and CDATA resolved). `None` if the
/// body is not such a document: S3 refuses it (MalformedXML).
fn delete_objects_keys(body: &[u8]) -> Option<Vec<String>> {
    let root = crate::xml::parse(std::str::from_utf8(body).ok()?.trim()).ok()?;
    if root.name != "Delete" {
        return None;
    }
    let objects = root.children.iter().filter(|o| o.name == "Object");
    objects.map(|o| crate::xml::child_text(o, "Key").map(str::to_owned)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SCOPE: Scope = Scope { region: "eu-west-1", account_id: "123456789012", secret_arns: &[] };
    const TABLE: &str = "arn:aws:dynamodb:eu-west-1:123456789012:table/jobs";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    fn call(action: &str, resource: &str) -> Call {
        Call::new(action, resource)
    }

    fn ddb(op: &str, body: Value) -> Vec<Call> {
        let h = headers(&[("x-amz-target", &format!("DynamoDB_20120810.{op}"))]);
        derive("dynamodb", &Method::POST, &"/".parse().unwrap(), &h, body.to_string().as_bytes(), &SCOPE)
    }

    #[test]
    fn access_keys_from_the_authorization_header_or_a_presigned_url() {
        let h = headers(&[(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=ASIAJOBSLOCAL0000002/20250101/eu-west-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
        )]);
        assert_eq!(access_key(&h, &"/".parse().unwrap()).as_deref(), Some("ASIAJOBSLOCAL0000002"));
        let presigned: Uri = "/bucket/results/a.json?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAJOBSLOCAL0000003%2F20250101%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Signature=x".parse().unwrap();
        assert_eq!(access_key(&HeaderMap::new(), &presigned).as_deref(), Some("ASIAJOBSLOCAL0000003"));
        assert_eq!(access_key(&HeaderMap::new(), &"/bucket/key".parse().unwrap()), None);
    }

    #[test]
    fn dynamodb_item_calls_name_the_table_and_queries_the_index() {
        assert_eq!(ddb("GetItem", json!({"TableName": "jobs", "Key": {}})), [call("dynamodb:GetItem", TABLE)]);
        assert_eq!(ddb("UpdateItem", json!({"TableName": TABLE})), [call("dynamodb:UpdateItem", TABLE)]);
        assert_eq!(
            ddb("Query", json!({"TableName": "jobs", "IndexName": "owner-submittedAt"})),
            [call("dynamodb:Query", &format!("{TABLE}/index/owner-submittedAt"))]
        );
        assert_eq!(ddb("Query", json!({"TableName": "jobs"})), [call("dynamodb:Query", TABLE)]);
        assert_eq!(ddb("ListTables", json!({})), [call("dynamodb:ListTables", "*")]);
        assert_eq!(ddb("GetItem", json!("not an object")), [call("dynamodb:GetItem", "*")]);
        let h = headers(&[("x-amz-target", "DynamoDB_20120810.GetItem")]);
        assert!(derive("dynamodb", &Method::POST, &"/".parse().unwrap(), &h, b"{not json", &SCOPE).is_empty());
    }

    #[test]
    fn dynamodb_transactions_are_authorized_item_by_item_and_batches_per_table() {
        let counters = "arn:aws:dynamodb:eu-west-1:123456789012:table/counters";
        let calls = ddb(
            "TransactWriteItems",
            json!({"TransactItems": [
                {"Put": {"TableName": "counters", "Item": {}}},
                {"Update": {"TableName": "counters", "Key": {}}},
                {"Delete": {"TableName": "jobs", "Key": {}}},
                {"ConditionCheck": {"TableName": "jobs", "Key": {}}},
                {"Put": {"TableName": "counters", "Item": {}}}
            ]}),
        );
        assert_eq!(
            calls,
            [
                call("dynamodb:ConditionCheckItem", TABLE),
                call("dynamodb:DeleteItem", TABLE),
                call("dynamodb:PutItem", counters),
                call("dynamodb:UpdateItem", counters),
            ]
        );
        assert_eq!(
            ddb("TransactGetItems", json!({"TransactItems": [{"Get": {"TableName": "jobs", "Key": {}}}]})),
            [call("dynamodb:GetItem", TABLE)]
        );
        assert_eq!(
            ddb("BatchWriteItem", json!({"RequestItems": {"jobs": [], "counters": []}})),
            [call("dynamodb:BatchWriteItem", counters), call("dynamodb:BatchWriteItem", TABLE)]
        );
        assert_eq!(ddb("BatchGetItem", json!({"RequestItems": {"jobs": {}}})), [call("dynamodb:BatchGetItem", TABLE)]);
    }

    #[test]
    fn events_are_put_on_each_entrys_bus() {
        let scope = Scope { region: "us-east-1", account_id: "123456789012", secret_arns: &[] };
        let h = headers(&[("x-amz-target", "AWSEvents.PutEvents")]);
        let body = json!({"Entries": [
            {"EventBusName": "jobs", "Source": "s", "DetailType": "d", "Detail": "{}"},
            {"EventBusName": "arn:aws:events:us-east-1:123456789012:event-bus/other", "Source": "s"},
            {"Source": "s"},
        ]});
        let calls = derive("events", &Method::POST, &"/".parse().unwrap(), &h, body.to_string().as_bytes(), &scope);
        assert_eq!(
            calls,
            [
                call("events:PutEvents", "arn:aws:events:us-east-1:123456789012:event-bus/default"),
                call("events:PutEvents", "arn:aws:events:us-east-1:123456789012:event-bus/jobs"),
                call("events:PutEvents", "arn:aws:events:us-east-1:123456789012:event-bus/other"),
            ]
        );
        let h = headers(&[("x-amz-target", "AWSEvents.CreateEventBus")]);
        let calls = derive("events", &Method::POST, &"/".parse().unwrap(), &h, br#"{"Name": "b2"}"#, &scope);
        assert_eq!(calls, [call("events:CreateEventBus", "arn:aws:events:us-east-1:123456789012:event-bus/b2")]);
    }

    #[test]
    fn a_secret_is_authorized_on_its_full_arn_however_it_is_named() {
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:jobs-webhook-signing-Ab3dEf";
        let other = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:jobs-other-Zz9yX8";
        let known = [other.to_string(), arn.to_string()];
        let scope = Scope { secret_arns: &known, ..SCOPE };
        let call_on = |op: &str, body: Value| {
            let h = headers(&[("x-amz-target", &format!("secretsmanager.{op}"))]);
            derive("secretsmanager", &Method::POST, &"/".parse().unwrap(), &h, body.to_string().as_bytes(), &scope)
        };
        for id in
            [arn, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:jobs-webhook-signing", "jobs-webhook-signing"]
        {
            assert_eq!(
                call_on("GetSecretValue", json!({"SecretId": id})),
                [call("secretsmanager:GetSecretValue", arn)],
                "{id}"
            );
        }
        // Not a secret of the account: as written (a name as its ARN without a suffix).
        assert_eq!(
            call_on("GetSecretValue", json!({"SecretId": "jobs-webhook"})),
            [call(
                "secretsmanager:GetSecretValue",
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:jobs-webhook"
            )]
        );
        assert_eq!(
            call_on("DescribeSecret", json!({"SecretId": "jobs-other"})),
            [call("secretsmanager:DescribeSecret", other)]
        );
        assert_eq!(call_on("ListSecrets", json!({})), [call("secretsmanager:ListSecrets", "*")]);
        let h = headers(&[("x-amz-target", "secretsmanager.GetSecretValue")]);
        assert!(derive("secretsmanager", &Method::POST, &"/".parse().unwrap(), &h, b"{", &scope).is_empty());
    }

    #[test]
    fn sqs_json_and_query_protocols() {
        let queue = "arn:aws:sqs:eu-west-1:123456789012:jobs-dlq";
        let url = "http://127.0.0.1:4020/123456789012/jobs-dlq";
        let json_call = |op: &str, body: Value| {
            let h = headers(&[("x-amz-target", &format!("AmazonSQS.{op}"))]);
            derive("sqs", &Method::POST, &"/".parse().unwrap(), &h, body.to_string().as_bytes(), &SCOPE)
        };
        assert_eq!(json_call("SendMessage", json!({"QueueUrl": url})), [call("sqs:SendMessage", queue)]);
        assert_eq!(json_call("SendMessageBatch", json!({"QueueUrl": url})), [call("sqs:SendMessage", queue)]);
        assert_eq!(json_call("DeleteMessageBatch", json!({"QueueUrl": url})), [call("sqs:DeleteMessage", queue)]);
        assert_eq!(json_call("ReceiveMessage", json!({"QueueUrl": url})), [call("sqs:ReceiveMessage", queue)]);
        assert_eq!(json_call("GetQueueUrl", json!({"QueueName": "jobs-dlq"})), [call("sqs:GetQueueUrl", queue)]);
        assert_eq!(json_call("ListQueues", json!({})), [call("sqs:ListQueues", "*")]);

        let form = format!("Action=SendMessage&QueueUrl={}&MessageBody=x", url.replace(':', "%3A").replace('/', "%2F"));
        let h = headers(&[("content-type", "application/x-www-form-urlencoded")]);
        assert_eq!(
            derive("sqs", &Method::POST, &"/".parse().unwrap(), &h, form.as_bytes(), &SCOPE),
            [call("sqs:SendMessage", queue)]
        );
        assert_eq!(
            derive("sqs", &Method::POST, &"/123456789012/jobs-dlq".parse().unwrap(), &h, b"Action=SendMessage", &SCOPE),
            [call("sqs:SendMessage", queue)]
        );
    }

    fn s3_calls(method: Method, uri: &str, extra: &[(&str, &str)], body: &str) -> Vec<Call> {
        let mut pairs = vec![("host", "127.0.0.1:4022")];
        pairs.extend_from_slice(extra);
        derive("s3", &method, &uri.parse().unwrap(), &headers(&pairs), body.as_bytes(), &SCOPE)
    }

    #[test]
    fn s3_object_and_bucket_calls() {
        let obj = "arn:aws:s3:::results/results/job 1.json";
        assert_eq!(s3_calls(Method::GET, "/results/results/job%201.json", &[], ""), [call("s3:GetObject", obj)]);
        assert_eq!(s3_calls(Method::HEAD, "/results/results/job%201.json", &[], ""), [call("s3:GetObject", obj)]);
        assert_eq!(s3_calls(Method::PUT, "/results/results/job%201.json", &[], ""), [call("s3:PutObject", obj)]);
        assert_eq!(s3_calls(Method::DELETE, "/results/results/job%201.json", &[], ""), [call("s3:DeleteObject", obj)]);
        assert_eq!(
            s3_calls(Method::PUT, "/results/results/job%201.json?partNumber=1&uploadId=u", &[], ""),
            [call("s3:PutObject", obj)]
        );
        assert_eq!(
            s3_calls(Method::GET, "/results/results/job%201.json?tagging", &[], ""),
            [call("s3:GetObjectTagging", obj)]
        );
        assert_eq!(
            s3_calls(Method::PUT, "/results/copy", &[("x-amz-copy-source", "/results/results/job%201.json")], ""),
            [call("s3:GetObject", obj), call("s3:PutObject", "arn:aws:s3:::results/copy")]
        );
        assert_eq!(
            s3_calls(Method::GET, "/results?list-type=2&prefix=results%2F", &[], ""),
            [call("s3:ListBucket", "arn:aws:s3:::results")]
        );
        assert_eq!(s3_calls(Method::HEAD, "/results", &[], ""), [call("s3:ListBucket", "arn:aws:s3:::results")]);
        assert_eq!(
            s3_calls(Method::GET, "/results?policy", &[], ""),
            [call("s3:GetBucketPolicy", "arn:aws:s3:::results")]
        );
        assert_eq!(
            s3_calls(Method::PUT, "/results?notification", &[], ""),
            [call("s3:PutBucketNotification", "arn:aws:s3:::results")]
        );
        assert_eq!(s3_calls(Method::GET, "/", &[], ""), [call("s3:ListAllMyBuckets", "*")]);
        assert_eq!(
            s3_calls(
                Method::POST,
                "/results?delete",
                &[],
                "<Delete><Object><Key>a&amp;b</Key></Object><Object><Key>c</Key></Object></Delete>"
            ),
            [call("s3:DeleteObject", "arn:aws:s3:::results/a&b"), call("s3:DeleteObject", "arn:aws:s3:::results/c")]
        );
    }

    #[test]
    fn s3_delete_objects_keys_are_read_as_xml() {
        let delete = |body: &str| s3_calls(Method::POST, "/results?delete", &[], body);
        // As the SDKs send it: S3's namespace, Quiet, a character reference
        // and a key in CDATA that looks like markup.
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
            <Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet>
            <Object><Key>a&#47;b</Key></Object><Object><Key><![CDATA[x</Key><Key>y]]></Key></Object></Delete>"#;
        assert_eq!(
            delete(body),
            [
                call("s3:DeleteObject", "arn:aws:s3:::results/a/b"),
                call("s3:DeleteObject", "arn:aws:s3:::results/x</Key><Key>y")
            ]
        );
        // Not readable as a DeleteObjects body: checked against every key.
        for broken in ["<Delete><Object><Key>a</Object></Delete>", "<Other/>", "<Delete><Object/></Delete>", ""] {
            assert_eq!(delete(broken), [call("s3:DeleteObject", "arn:aws:s3:::results/*")], "{broken}");
        }
    }

    #[test]
    fn s3_virtual_hosted_and_presigned() {
        let h = headers(&[("host", "results.localhost:4022")]);
        assert_eq!(
            derive("s3", &Method::GET, &"/results/a.json".parse().unwrap(), &h, b"", &SCOPE),
            [call("s3:GetObject", "arn:aws:s3:::results/results/a.json")]
        );
        assert_eq!(
            s3_calls(Method::GET, "/results/results/a.json?X-Amz-Credential=K%2Fx&X-Amz-Signature=s", &[], ""),
            [call("s3:GetObject", "arn:aws:s3:::results/results/a.json")]
        );
    }
}
