//! IAM on the fixture stack: the role policies the model reads (and the
//! features it refuses), and the real service proxies and Lambda Invoke API
//! in front of moto letting the fixture role's calls through and answering
//! the others with each service's AccessDenied, as its SDK parses it.
//!
//! The proxy test needs moto (`JOBS_LOCAL_MOTO_BIN`, else
//! `.tools/venv/bin/moto_server`, else `moto_server` on PATH) and fails
//! without it.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{edited_fixture, fixture, with_moto};
use http_body_util::{BodyExt, Full};
use jobs_local::control::Control;
use jobs_local::iam::{Iam, Principal};
use jobs_local::lambda::LambdaService;
use jobs_local::model::{ACCOUNT_ID, Model};
use jobs_local::policy::{self, Decision, Effect, Patterns, Statement};
use jobs_local::provision::{self, Endpoints};
use jobs_local::proxy::ServiceProxy;
use jobs_local::stack::{Dynamic, Stacks};
use serde_json::{Value, json};

const REGION: &str = "eu-west-1";

fn model_of(dir: &Path) -> Result<Model, String> {
    let stacks = Stacks::load(dir, "app").expect("fixture loads");
    Model::build(&stacks, REGION, Dynamic::default()).map_err(|e| e.to_string())
}

fn build_error(edit: impl FnOnce(&mut Value)) -> String {
    let dir = edited_fixture(edit);
    model_of(dir.path()).expect_err("the model must be rejected")
}

/// The fixture role policy's document, to edit.
fn policy_document(app: &Value) -> Value {
    serde_json::from_str(app["resource"]["aws_iam_role_policy"]["policy"]["policy"].as_str().unwrap()).unwrap()
}

fn set_policy_document(app: &mut Value, doc: &Value) {
    app["resource"]["aws_iam_role_policy"]["policy"]["policy"] = json!(doc.to_string());
}

#[test]
fn reads_each_functions_role_policies() {
    let m = model_of(&fixture()).unwrap();
    let role = &m.function("fixture-consumer").unwrap().role;
    assert_eq!(role.role_name, "fixture-role");
    let allow = |actions: &[&str], resources: &[&str]| Statement {
        effect: Effect::Allow,
        actions: Patterns::AnyOf(actions.iter().map(|s| s.to_string()).collect()),
        resources: Patterns::AnyOf(resources.iter().map(|s| s.to_string()).collect()),
    };
    let table = "arn:aws:dynamodb:eu-west-1:123456789012:table/fixture-jobs";
    assert_eq!(
        role.statements,
        [
            allow(&["dynamodb:GetItem", "dynamodb:UpdateItem"], &[table]),
            allow(&["dynamodb:Query"], &[&format!("{table}/index/by-status")]),
            allow(&["s3:GetObject", "s3:PutObject"], &["arn:aws:s3:::fixture-results-123456789012/results/*"]),
            allow(&["sqs:SendMessage"], &["arn:aws:sqs:eu-west-1:123456789012:fixture-dlq"]),
            allow(&["events:PutEvents"], &["arn:aws:events:eu-west-1:123456789012:event-bus/fixture-jobs"]),
            allow(&["lambda:InvokeFunction"], &["arn:aws:lambda:eu-west-1:123456789012:function:fixture-items"]),
        ]
    );
    // The logs and KMS statements reference resources the fixture does not
    // even define: they are not enforced, so never resolved.
    assert_eq!(role.not_enforced, ["logs:CreateLogStream", "logs:PutLogEvents", "kms:Decrypt"]);
    assert_eq!(role.ignored_managed_policies, ["AWSLambdaBasicExecutionRole"]);
    assert_eq!(m.function("fixture-items").unwrap().role, *role, "the functions share the role");
}

#[test]
fn deny_not_action_and_inline_policies_are_read() {
    let dir = edited_fixture(|app| {
        let mut doc = policy_document(app);
        doc["Statement"].as_array_mut().unwrap().push(
            json!({"Effect": "Deny", "NotAction": "s3:GetObject", "NotResource": ["${aws_s3_bucket.results.arn}/*"]}),
        );
        set_policy_document(app, &doc);
        app["resource"]["aws_iam_role"]["role"]["inline_policy"] = json!([{"name": "inline", "policy": "{\"Statement\": {\"Effect\": \"Allow\", \"Action\": \"s3:ListBucket\", \"Resource\": \"${aws_s3_bucket.results.arn}\"}}"}]);
    });
    let m = model_of(dir.path()).unwrap();
    let statements = &m.function("fixture-consumer").unwrap().role.statements;
    assert_eq!(statements.len(), 8);
    assert_eq!(
        statements[0],
        Statement {
            effect: Effect::Allow,
            actions: Patterns::AnyOf(vec!["s3:ListBucket".into()]),
            resources: Patterns::AnyOf(vec!["arn:aws:s3:::fixture-results-123456789012".into()]),
        }
    );
    assert_eq!(
        statements[7],
        Statement {
            effect: Effect::Deny,
            actions: Patterns::NoneOf(vec!["s3:GetObject".into()]),
            resources: Patterns::NoneOf(vec!["arn:aws:s3:::fixture-results-123456789012/*".into()]),
        }
    );
}

#[test]
fn names_unsupported_policy_features() {
    let e = build_error(|app| {
        let mut doc = policy_document(app);
        doc["Statement"][1]["Condition"] = json!({"StringEquals": {"dynamodb:LeadingKeys": ["x"]}});
        set_policy_document(app, &doc);
    });
    assert!(e.starts_with("aws_iam_role_policy.policy: field `policy.Statement[1].Condition`: conditions on statements about sqs, dynamodb, s3 or lambda actions are not supported"), "{e}");

    let e = build_error(|app| {
        let mut doc = policy_document(app);
        doc["Statement"][3]["Resource"] = json!("${aws_kms_key.key.arn}/results/*");
        set_policy_document(app, &doc);
    });
    assert_eq!(
        e,
        "aws_iam_role_policy.policy: field `policy.Statement[3].Resource[0]`: cannot resolve `${aws_kms_key.key.arn}`: stack `app` has no resource `aws_kms_key.key`"
    );

    let e = build_error(|app| {
        app["resource"]["aws_iam_role_policy_attachment"]["admin"] =
            json!({"role": "${aws_iam_role.role.name}", "policy_arn": "arn:aws:iam::aws:policy/AdministratorAccess"});
    });
    assert!(
        e.starts_with("aws_iam_role_policy_attachment.admin: field `policy_arn`: managed policy `arn:aws:iam::aws:policy/AdministratorAccess` is neither"),
        "{e}"
    );

    let e = build_error(|app| {
        app["resource"]["aws_lambda_function"]["items"]["role"] = json!("arn:aws:iam::123456789012:role/elsewhere");
    });
    assert!(
        e.starts_with("aws_lambda_function.items: field `role`: `arn:aws:iam::123456789012:role/elsewhere` is not a role of the stack"),
        "{e}"
    );

    let e = build_error(|app| {
        app["resource"]["aws_iam_role_policy"]["policy"]["policy"] = json!("${jsonencode({Statement = []})}");
    });
    assert!(e.starts_with("aws_iam_role_policy.policy: field `policy`: cannot resolve `${jsonencode("), "{e}");
}

#[test]
fn a_customer_managed_policy_is_read_from_the_stack() {
    let dir = edited_fixture(|app| {
        app["resource"]["aws_iam_policy"] = json!({"extra": {"name": "extra", "policy": "{\"Statement\": [{\"Effect\": \"Allow\", \"Action\": \"sqs:ReceiveMessage\", \"Resource\": \"${aws_sqs_queue.jobs.arn}\"}]}"}});
        app["resource"]["aws_iam_role_policy_attachment"]["extra"] =
            json!({"role": "${aws_iam_role.role.name}", "policy_arn": "${aws_iam_policy.extra.arn}"});
    });
    let m = model_of(dir.path()).unwrap();
    let role = &m.function("fixture-consumer").unwrap().role;
    assert_eq!(
        policy::decide(&role.statements, "sqs:ReceiveMessage", "arn:aws:sqs:eu-west-1:123456789012:fixture-jobs"),
        Decision::Allow
    );
}

// ---- through the real proxies, against moto ----

/// The consumer's key, the webhook sender's, and a key that is no function's.
const FUNCTION_KEY: &str = "ASIAJOBSLOCAL0000000";
const SENDER_KEY: &str = "ASIAJOBSLOCAL0000001";
const OTHER_KEY: &str = "test";

fn dynamodb(endpoint: &str, key: &str) -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(key, "test", Some("test".into()), None, "test"))
            .endpoint_url(endpoint)
            .build(),
    )
}

fn sqs(endpoint: &str, key: &str) -> aws_sdk_sqs::Client {
    use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
    aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(key, "test", Some("test".into()), None, "test"))
            .endpoint_url(endpoint)
            .build(),
    )
}

fn events(endpoint: &str, key: &str) -> aws_sdk_eventbridge::Client {
    use aws_sdk_eventbridge::config::{BehaviorVersion, Credentials, Region};
    aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(key, "test", Some("test".into()), None, "test"))
            .endpoint_url(endpoint)
            .build(),
    )
}

fn secrets(endpoint: &str, key: &str) -> aws_sdk_secretsmanager::Client {
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
    aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(key, "test", Some("test".into()), None, "test"))
            .endpoint_url(endpoint)
            .build(),
    )
}

fn s3(endpoint: &str, key: &str) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(key, "test", Some("test".into()), None, "test"))
            .endpoint_url(endpoint)
            .force_path_style(true)
            .build(),
    )
}

async fn http(method: &str, url: &str, headers: &[(&str, &str)]) -> (u16, hyper::HeaderMap, String) {
    let client = jobs_local::httpx::client();
    let mut req = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client.request(req.body(Full::new(Bytes::new())).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes()).into_owned();
    (status, headers, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxies_and_the_invoke_api_enforce_the_role() {
    let logs = tempfile::tempdir().unwrap();
    with_moto(logs.path(), exercise).await;
}

async fn exercise(moto: Endpoints) {
    let stacks = Stacks::load(&fixture(), "app").unwrap();
    let mut dynamic = Dynamic { sqs_endpoint: Some(moto.sqs.clone()), ids: Default::default() };
    let mut model = Model::build(&stacks, REGION, dynamic.clone()).unwrap();
    provision::provision_data(&model, &moto).await.unwrap();
    let provisioned = provision::provision_secrets(&model, &moto, &mut dynamic).await.unwrap();
    model.fill(&dynamic).unwrap();
    let principal = |function: &str, key: &str| Principal {
        assumable_roles: Vec::new(),
        function: function.into(),
        access_key_id: key.into(),
        policy: model.function(function).unwrap().role.clone(),
    };
    let iam = Iam::new(
        ACCOUNT_ID,
        vec![principal("fixture-consumer", FUNCTION_KEY), principal("fixture-webhook-sender", SENDER_KEY)],
    );

    let (stop, _) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    let mut proxied = std::collections::HashMap::new();
    for (service, upstream) in [
        ("sqs", &moto.sqs),
        ("dynamodb", &moto.dynamodb),
        ("s3", &moto.s3),
        ("events", &moto.events),
        ("secretsmanager", &moto.secretsmanager),
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        proxied.insert(service, format!("http://{}", listener.local_addr().unwrap()));
        let proxy = ServiceProxy::new(service, upstream, REGION, iam.clone(), None)
            .with_secret_arns(model.secrets.iter().map(|s| s.arn.clone()).collect());
        servers.push(tokio::spawn(jobs_local::httpx::serve(
            listener,
            Arc::new(proxy),
            stop.subscribe(),
            Duration::from_secs(1),
        )));
    }
    let lambda_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lambda_url = format!("http://{}", lambda_listener.local_addr().unwrap());
    let (lambda, lambda_server) = LambdaService::start(lambda_listener, Vec::new(), REGION, ACCOUNT_ID).unwrap();
    lambda.set_iam(iam.clone());
    let control_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let denials_url = format!("http://{}/iam/denials", control_listener.local_addr().unwrap());
    servers.push(tokio::spawn(jobs_local::httpx::serve(
        control_listener,
        Arc::new(Control {
            iam: iam.clone(),
            footprint: jobs_local::footprint::Footprint::new(&[], lambda.clone()),
            faults: None,
        }),
        stop.subscribe(),
        Duration::from_secs(1),
    )));

    let table = "fixture-jobs";
    let table_arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/fixture-jobs";
    let bucket = "fixture-results-123456789012";
    let not_authorized = |action: &str, resource: &str| {
        format!(
            "User: arn:aws:sts::123456789012:assumed-role/fixture-role/fixture-consumer is not authorized to perform: {action} on resource: {resource} because no identity-based policy allows the {action} action"
        )
    };

    // DynamoDB: UpdateItem, GetItem and Query on the index are allowed.
    use aws_sdk_dynamodb::types::AttributeValue as Av;
    let ddb = dynamodb(&proxied["dynamodb"], FUNCTION_KEY);
    ddb.update_item()
        .table_name(table)
        .key("jobRequestId", Av::S("j1".into()))
        .update_expression("SET jobStatus = :s")
        .expression_attribute_values(":s", Av::S("done".into()))
        .send()
        .await
        .unwrap();
    let item = ddb.get_item().table_name(table).key("jobRequestId", Av::S("j1".into())).send().await.unwrap();
    assert_eq!(item.item.unwrap()["jobStatus"], Av::S("done".into()));
    ddb.query()
        .table_name(table)
        .index_name("by-status")
        .key_condition_expression("jobStatus = :s")
        .expression_attribute_values(":s", Av::S("done".into()))
        .send()
        .await
        .unwrap();
    // PutItem and a Query of the table itself are not.
    let err = ddb.put_item().table_name(table).item("jobRequestId", Av::S("j2".into())).send().await.unwrap_err();
    let err = err.into_service_error();
    use aws_sdk_dynamodb::error::ProvideErrorMetadata as _;
    assert_eq!(err.code(), Some("AccessDeniedException"), "{err:?}");
    assert_eq!(err.message(), Some(not_authorized("dynamodb:PutItem", table_arn).as_str()));
    let err = ddb
        .query()
        .table_name(table)
        .key_condition_expression("jobRequestId = :j")
        .expression_attribute_values(":j", Av::S("j1".into()))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("AccessDeniedException"), "{err:?}");
    // A key that is no function's is not checked.
    dynamodb(&proxied["dynamodb"], OTHER_KEY)
        .put_item()
        .table_name(table)
        .item("jobRequestId", Av::S("j3".into()))
        .send()
        .await
        .unwrap();

    // SQS: SendMessage to the DLQ only.
    let q = sqs(&proxied["sqs"], FUNCTION_KEY);
    let dlq_url = format!("{}/123456789012/fixture-dlq", moto.sqs);
    let jobs_url = format!("{}/123456789012/fixture-jobs", moto.sqs);
    q.send_message().queue_url(&dlq_url).message_body("ok").send().await.unwrap();
    let err = q.send_message().queue_url(&jobs_url).message_body("no").send().await.unwrap_err().into_service_error();
    assert_eq!(err.code(), Some("AccessDenied"), "{err:?}");
    assert_eq!(
        err.message(),
        Some(not_authorized("sqs:SendMessage", "arn:aws:sqs:eu-west-1:123456789012:fixture-jobs").as_str())
    );
    let err = q.receive_message().queue_url(&dlq_url).send().await.unwrap_err().into_service_error();
    assert_eq!(err.code(), Some("AccessDenied"), "{err:?}");

    // S3: GetObject and PutObject under results/ only, presigned URLs too.
    let objects = s3(&proxied["s3"], FUNCTION_KEY);
    objects.put_object().bucket(bucket).key("results/a.json").body(b"{}".to_vec().into()).send().await.unwrap();
    let got = objects.get_object().bucket(bucket).key("results/a.json").send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), b"{}");
    let err = objects
        .put_object()
        .bucket(bucket)
        .key("other/a.json")
        .body(b"{}".to_vec().into())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("AccessDenied"), "{err:?}");
    assert_eq!(
        err.message(),
        Some(not_authorized("s3:PutObject", &format!("arn:aws:s3:::{bucket}/other/a.json")).as_str())
    );
    let err = objects.list_objects_v2().bucket(bucket).send().await.unwrap_err().into_service_error();
    assert_eq!(err.code(), Some("AccessDenied"), "{err:?}");
    let presign = aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(300)).unwrap();
    let allowed = objects.get_object().bucket(bucket).key("results/a.json").presigned(presign.clone()).await.unwrap();
    assert_eq!(http("GET", allowed.uri(), &[]).await.0, 200);
    s3(&moto.s3, OTHER_KEY)
        .put_object()
        .bucket(bucket)
        .key("other/b.json")
        .body(b"{}".to_vec().into())
        .send()
        .await
        .unwrap();
    let denied = objects.get_object().bucket(bucket).key("other/b.json").presigned(presign).await.unwrap();
    let (status, _, body) = http("GET", denied.uri(), &[]).await;
    assert_eq!(status, 403);
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");

    // EventBridge: the fixture role may put events on its bus only.
    let entry = |bus: &str| {
        aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(bus)
            .source("fixture")
            .detail_type("Fixture")
            .detail("{}")
            .build()
    };
    let bus = events(&proxied["events"], FUNCTION_KEY);
    let put = bus.put_events().entries(entry("fixture-jobs")).send().await.unwrap();
    assert_eq!(put.failed_entry_count(), 0);
    let err = bus.put_events().entries(entry("default")).send().await.unwrap_err().into_service_error();
    assert_eq!(err.code(), Some("AccessDeniedException"), "{err:?}");
    assert_eq!(
        err.message(),
        Some(not_authorized("events:PutEvents", "arn:aws:events:eu-west-1:123456789012:event-bus/default").as_str())
    );

    // Secrets Manager: the sender reads its signing secret by the ARN its
    // environment names (moto's), by a partial ARN or by name; the consumer's
    // role has no grant, whichever form it names the secret by.
    let secret = &provisioned[0];
    let sender_env = &model.function("fixture-webhook-sender").unwrap().env;
    assert_eq!(sender_env["WEBHOOK_SIGNING_SECRET_ID"], secret.arn);
    let partial_arn = &secret.arn[..secret.arn.len() - 7];
    for id in [secret.arn.as_str(), partial_arn, "fixture-webhook-signing"] {
        let value = secrets(&proxied["secretsmanager"], SENDER_KEY).get_secret_value().secret_id(id).send().await;
        assert_eq!(value.unwrap().secret_string(), Some(secret.value.as_str()), "{id}");
    }
    let err = secrets(&proxied["secretsmanager"], FUNCTION_KEY)
        .get_secret_value()
        .secret_id("fixture-webhook-signing")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("AccessDeniedException"), "{err:?}");
    assert_eq!(err.message(), Some(not_authorized("secretsmanager:GetSecretValue", &secret.arn).as_str()));

    // Lambda Invoke: IAM answers before the function is looked up (the
    // service runs none here), so an allowed call gets 404.
    let invoke = |function: &str, key: &str| {
        let url = format!("{lambda_url}/2015-03-31/functions/{function}/invocations");
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={key}/20250101/eu-west-1/lambda/aws4_request, SignedHeaders=host, Signature=0"
        );
        async move { http("POST", &url, &[("authorization", &auth)]).await }
    };
    assert_eq!(invoke("fixture-items", FUNCTION_KEY).await.0, 404);
    let (status, headers, body) = invoke("fixture-authorizer", FUNCTION_KEY).await;
    assert_eq!((status, headers["x-amzn-errortype"].to_str().unwrap()), (403, "AccessDeniedException"));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["message"],
        not_authorized("lambda:InvokeFunction", "arn:aws:lambda:eu-west-1:123456789012:function:fixture-authorizer")
    );
    assert_eq!(invoke("fixture-authorizer", OTHER_KEY).await.0, 404);
    // UpdateFunctionCode (what `just watch` calls) passes the same chain:
    // no function's role may replace a function's code.
    let update_code = |key: &str| {
        let url = format!("{lambda_url}/2015-03-31/functions/fixture-items/code");
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={key}/20250101/eu-west-1/lambda/aws4_request, SignedHeaders=host, Signature=0"
        );
        async move { http("PUT", &url, &[("authorization", &auth)]).await }
    };
    let (status, headers, body) = update_code(FUNCTION_KEY).await;
    assert_eq!((status, headers["x-amzn-errortype"].to_str().unwrap()), (403, "AccessDeniedException"));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["message"],
        not_authorized("lambda:UpdateFunctionCode", "arn:aws:lambda:eu-west-1:123456789012:function:fixture-items")
    );
    assert_ne!(update_code(OTHER_KEY).await.0, 403, "a key that is no function's is not checked");

    // Every denial was counted, per function and action.
    let (status, _, body) = http("GET", &denials_url, &[]).await;
    assert_eq!(status, 200);
    let report: Value = serde_json::from_str(&body).unwrap();
    let counts: Vec<(String, u64)> = report["denials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["action"].as_str().unwrap().to_string(), d["count"].as_u64().unwrap()))
        .collect();
    let expected = [
        ("dynamodb:PutItem", 1),
        ("dynamodb:Query", 1),
        ("events:PutEvents", 1),
        ("lambda:InvokeFunction", 1),
        ("lambda:UpdateFunctionCode", 1),
        ("s3:GetObject", 1),
        ("s3:ListBucket", 1),
        ("s3:PutObject", 1),
        ("secretsmanager:GetSecretValue", 1),
        ("sqs:ReceiveMessage", 1),
        ("sqs:SendMessage", 1),
    ];
    assert_eq!(counts, expected.map(|(a, n)| (a.to_string(), n)), "{report}");
    assert_eq!(report["total"], 11);
    assert!(report["denials"].as_array().unwrap().iter().all(|d| d["function"] == "fixture-consumer"));

    stop.send_replace(true);
    for s in servers {
        s.await.unwrap();
    }
    lambda.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), lambda_server).await;
}
