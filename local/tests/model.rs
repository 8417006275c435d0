//! The stack model and resolver on the hand-written fixture
//! (tests/fixtures/cdktf.out), including the errors for what the local target
//! does not support.

mod common;

use std::path::Path;

use common::{edited_fixture, fixture};
use jobs_local::model::{IntegrationKind, Model, Passthrough};
use jobs_local::stack::{Dynamic, Stacks};
use serde_json::{Value, json};

fn load(dir: &Path) -> Stacks {
    Stacks::load(dir, "app").expect("fixture loads")
}

fn build_error(edit: impl FnOnce(&mut Value)) -> String {
    let dir = edited_fixture(edit);
    let stacks = load(dir.path());
    Model::build(&stacks, "eu-west-1", Dynamic::default()).expect_err("the model must be rejected").to_string()
}

#[test]
fn reads_the_fixture_with_placeholders_for_moto_ids() {
    let stacks = load(&fixture());
    assert_eq!(stacks.region(), Some("eu-west-1"));
    assert_eq!(stacks.stacks.keys().collect::<Vec<_>>(), ["app", "cognito"]);
    let m = Model::build(&stacks, "eu-west-1", Dynamic::default()).unwrap();

    let jobs = m.queues.iter().find(|q| q.name == "fixture-jobs").unwrap();
    assert_eq!(jobs.arn, "arn:aws:sqs:eu-west-1:123456789012:fixture-jobs");
    assert_eq!(jobs.visibility_timeout, 1);
    let redrive = jobs.redrive.as_ref().unwrap();
    assert_eq!(redrive.dead_letter_target_arn, "arn:aws:sqs:eu-west-1:123456789012:fixture-dlq");
    assert_eq!(redrive.max_receive_count, 2);
    assert_eq!(jobs.attributes["VisibilityTimeout"], "1");
    assert_eq!(jobs.attributes["MessageRetentionPeriod"], "3600");
    let policy: Value = serde_json::from_str(&jobs.attributes["RedrivePolicy"]).unwrap();
    assert_eq!(
        policy,
        json!({"deadLetterTargetArn": "arn:aws:sqs:eu-west-1:123456789012:fixture-dlq", "maxReceiveCount": "2"})
    );

    let table = &m.tables[0];
    assert_eq!((table.name.as_str(), table.hash_key.as_str()), ("fixture-jobs", "jobRequestId"));
    assert_eq!(table.global_secondary_indexes[0].name, "by-status");
    assert_eq!(table.global_secondary_indexes[0].projection_type, "KEYS_ONLY");
    assert_eq!(table.ttl_attribute.as_deref(), Some("expiresAt"));
    assert_eq!(m.buckets[0].name, "fixture-results-123456789012");

    let auth = m.function("fixture-authorizer").unwrap();
    assert_eq!(auth.zip, fixture().join("stacks/app/assets/authorizer/bootstrap.zip"));
    assert_eq!(auth.timeout_secs, 5);
    assert_eq!(
        auth.env["COGNITO_ISSUER"],
        "https://cognito-idp.eu-west-1.amazonaws.com/pending-cognito/aws_cognito_user_pool.pool.id"
    );
    assert_eq!(auth.env["COGNITO_APP_CLIENT_ID"], "pending-cognito/aws_cognito_user_pool_client.client.id");
    let items = m.function("fixture-items").unwrap();
    assert_eq!(
        (items.timeout_secs, items.memory_mb, items.handler.as_str(), items.reserved_concurrency),
        (3, 128, "bootstrap", None)
    );
    assert_eq!(m.function("fixture-consumer").unwrap().reserved_concurrency, Some(2));

    let esm = &m.mappings[0];
    assert_eq!(esm.function, "fixture-consumer");
    assert_eq!(esm.queue_arn, jobs.arn);
    assert_eq!(
        (
            esm.batch_size,
            esm.batching_window_secs,
            esm.report_batch_item_failures,
            esm.maximum_concurrency,
            esm.enabled
        ),
        (5, 0, true, Some(2), true)
    );

    let api = &m.apis[0];
    assert_eq!(api.stages, ["test"]);
    assert_eq!(api.id.len(), 10);
    let paths: Vec<&str> = api.resources.iter().map(|r| r.path.as_str()).collect();
    for p in ["/", "/submit", "/items", "/items/{itemId}"] {
        assert!(paths.contains(&p), "{p} in {paths:?}");
    }
    let submit = api.resources.iter().find(|r| r.path == "/submit").unwrap();
    let post = &submit.methods[0];
    assert_eq!(post.http_method, "POST");
    assert_eq!(post.authorizer_id.as_deref(), Some("aws_api_gateway_authorizer.auth"));
    let integration = post.integration.as_ref().unwrap();
    assert_eq!(
        integration.kind,
        IntegrationKind::Sqs { path: "/123456789012/fixture-jobs".into(), max_message_bytes: 1024 }
    );
    assert_eq!(integration.passthrough, Passthrough::Never);
    assert_eq!(integration.responses.len(), 2);
    assert!(integration.request_templates.contains_key("application/json"));
    let item = api.resources.iter().find(|r| r.path == "/items/{itemId}").unwrap();
    assert_eq!(
        item.methods[0].integration.as_ref().unwrap().kind,
        IntegrationKind::LambdaProxy { function: "fixture-items".into() }
    );
    let authorizer = &api.authorizers[0];
    assert_eq!(
        (authorizer.function.as_str(), authorizer.identity_header.as_str(), authorizer.ttl_secs),
        ("fixture-authorizer", "authorization", 60)
    );
    assert!(authorizer.validation.as_ref().unwrap().is_match("abc-1"));
    assert!(!authorizer.validation.as_ref().unwrap().is_match("x abc"));
    assert_eq!(api.gateway_responses.keys().collect::<Vec<_>>(), ["DEFAULT_5XX", "UNAUTHORIZED"]);

    let pool = &m.user_pools[0];
    assert_eq!(pool.create_request["PoolName"], "fixture-users");
    assert_eq!(pool.create_request["Policies"]["PasswordPolicy"]["MinimumLength"], 12);
    assert!(pool.username_is_email);
    let client = &m.user_pool_clients[0];
    assert_eq!(client.pool_key, pool.key);
    assert_eq!(
        client.create_request["ExplicitAuthFlows"],
        json!(["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"])
    );
    assert_eq!(client.create_request["TokenValidityUnits"], json!({"IdToken": "minutes"}));
}

#[test]
fn resolves_moto_ids_and_endpoints_once_known() {
    let stacks = load(&fixture());
    let mut dynamic = Dynamic { sqs_endpoint: Some("http://127.0.0.1:4020".into()), ..Default::default() };
    dynamic.ids.insert(Dynamic::key("cognito", "aws_cognito_user_pool", "pool"), "eu-west-1_Abc".into());
    dynamic.ids.insert(Dynamic::key("cognito", "aws_cognito_user_pool_client", "client"), "client123".into());
    let m = Model::build(&stacks, "eu-west-1", dynamic).unwrap();
    let auth = m.function("fixture-authorizer").unwrap();
    assert_eq!(auth.env["COGNITO_ISSUER"], "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc");
    assert_eq!(auth.env["COGNITO_APP_CLIENT_ID"], "client123");
    assert_eq!(auth.env["JWKS_URL"], "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc/.well-known/jwks.json");
    let consumer = m.function("fixture-consumer").unwrap();
    assert_eq!(consumer.env["JOB_QUEUE_URL"], "http://127.0.0.1:4020/123456789012/fixture-jobs");
    assert_eq!(consumer.env["JOBS_TABLE_NAME"], "fixture-jobs");
    assert_eq!(consumer.env["RESULTS_BUCKET_NAME"], "fixture-results-123456789012");
    assert_eq!(m.mappings[0].queue_url, "http://127.0.0.1:4020/123456789012/fixture-jobs");
}

/// `run` builds the model once, before moto runs, and fills in moto's values
/// after provisioning: the same model as one built with them.
#[test]
fn a_model_built_before_moto_runs_is_filled_in_once_it_has() {
    let stacks = load(&fixture());
    let mut dynamic = Dynamic { sqs_endpoint: Some("http://127.0.0.1:4020".into()), ..Default::default() };
    dynamic.ids.insert(Dynamic::key("cognito", "aws_cognito_user_pool", "pool"), "eu-west-1_Abc".into());
    dynamic.ids.insert(Dynamic::key("cognito", "aws_cognito_user_pool_client", "client"), "client123".into());
    let mut filled = Model::build(&stacks, "eu-west-1", Dynamic::default()).unwrap();
    assert!(filled.queues[0].url.starts_with(Dynamic::PENDING_SQS_ENDPOINT));
    filled.fill(&dynamic).unwrap();
    let built = Model::build(&stacks, "eu-west-1", dynamic.clone()).unwrap();
    assert_eq!(format!("{filled:?}"), format!("{built:?}"));
    assert_eq!(filled.function("fixture-authorizer").unwrap().env["COGNITO_APP_CLIENT_ID"], "client123");

    // A moto value where `fill` does not reach is named.
    let dir = edited_fixture(|app| {
        app["resource"]["aws_s3_bucket"]["results"]["bucket"] = json!("results-${aws_sqs_queue.jobs.url}");
    });
    let mut m = Model::build(&load(dir.path()), "eu-west-1", Dynamic::default()).unwrap();
    let e = m.fill(&dynamic).unwrap_err();
    assert!(e.starts_with("`http://pending-sqs-endpoint`: a value only known once moto runs"), "{e}");
}

#[test]
fn the_region_flows_into_arns() {
    let stacks = load(&fixture());
    let m = Model::build(&stacks, "us-west-2", Dynamic::default()).unwrap();
    assert_eq!(m.queues[0].arn.split(':').nth(3), Some("us-west-2"));
    // The SQS integration URI is written for the stack's region through data.aws_region.
    assert!(m.apis[0].resources.iter().any(|r| {
        r.methods.iter().any(|me| matches!(me.integration.as_ref().map(|i| &i.kind), Some(IntegrationKind::Sqs { .. })))
    }));
}

#[test]
fn names_resource_field_and_expression_of_unsupported_references() {
    let err = build_error(|j| {
        j["resource"]["aws_lambda_function"]["items"]["environment"]["variables"]["STAGE"] =
            json!("x-${upper(var.prefix)}");
    });
    assert!(err.contains("aws_lambda_function.items"), "{err}");
    assert!(err.contains("environment.variables.STAGE"), "{err}");
    assert!(err.contains("${upper(var.prefix)}"), "{err}");
    assert!(err.contains("function calls"), "{err}");

    let err = build_error(|j| {
        j["resource"]["aws_sqs_queue"]["jobs"]["name"] = json!("${aws_sqs_queue.nope.name}");
    });
    assert!(
        err.contains("aws_sqs_queue.jobs")
            && err.contains("`name`")
            && err.contains("no resource `aws_sqs_queue.nope`"),
        "{err}"
    );

    let err = build_error(|j| {
        j["variable"]["prefix"] = json!({"type": "string"});
    });
    assert!(err.contains("variable `prefix` has no default"), "{err}");

    let err = build_error(|j| {
        j["resource"]["aws_s3_bucket"]["results"]["bucket"] = json!("${var.prefix ? \"a\" : \"b\"}");
    });
    assert!(err.contains("aws_s3_bucket.results") && err.contains("conditional"), "{err}");

    let err = build_error(|j| {
        j["resource"]["aws_lambda_function"]["items"]["environment"]["variables"]["X"] =
            json!("${data.aws_availability_zones.all.names}");
    });
    assert!(err.contains("no data source `data.aws_availability_zones.all`"), "{err}");
}

#[test]
fn names_unsupported_resource_features() {
    let err = build_error(|j| {
        j["resource"]["aws_api_gateway_integration"]["item"]["type"] = json!("HTTP_PROXY");
    });
    assert!(
        err.contains("aws_api_gateway_integration.item") && err.contains("field `type`") && err.contains("HTTP_PROXY"),
        "{err}"
    );

    let err = build_error(|j| {
        j["resource"]["aws_api_gateway_integration"]["submit"]["request_templates"]["application/json"] =
            json!("#if($input.body)x#end");
    });
    assert!(err.contains("aws_api_gateway_integration.submit"), "{err}");
    assert!(err.contains("request_templates[\"application/json\"]") && err.contains("#if"), "{err}");

    let err = build_error(|j| {
        j["resource"]["aws_api_gateway_gateway_response"]["unauthorized"]["response_templates"]["application/json"] =
            json!("$context.identity.sourceIp");
    });
    assert!(
        err.contains("aws_api_gateway_gateway_response.unauthorized") && err.contains("$context.identity.sourceIp"),
        "{err}"
    );

    let err = build_error(|j| {
        j["resource"]["aws_lambda_function"]["items"]["runtime"] = json!("python3.12");
    });
    assert!(err.contains("aws_lambda_function.items") && err.contains("python3.12"), "{err}");

    let err = build_error(|j| {
        j["resource"]["aws_api_gateway_authorizer"]["auth"]["type"] = json!("REQUEST");
    });
    assert!(err.contains("aws_api_gateway_authorizer.auth") && err.contains("only TOKEN"), "{err}");

    let err = build_error(|j| {
        j["resource"]["aws_api_gateway_method"]["items_get"]["authorization"] = json!("COGNITO_USER_POOLS");
    });
    assert!(err.contains("aws_api_gateway_method.items_get") && err.contains("COGNITO_USER_POOLS"), "{err}");
    assert!(err.contains("NONE, CUSTOM or AWS_IAM"), "{err}");

    let err = build_error(|j| {
        j["resource"]["aws_lambda_event_source_mapping"]["trigger"]["function_name"] = json!("nope");
    });
    assert!(err.contains("aws_lambda_event_source_mapping.trigger") && err.contains("function_name"), "{err}");
}

#[test]
fn a_missing_stack_is_explained() {
    let err = Stacks::load(&fixture(), "nope").unwrap_err().to_string();
    assert!(err.contains("stack `nope` not found") && err.contains("synth"), "{err}");
}

#[test]
fn an_aws_iam_method_and_the_role_machine_clients_assume_are_read() {
    let dir = edited_fixture(|j| {
        j["resource"]["aws_api_gateway_method"]["items_get"]["authorization"] = json!("AWS_IAM");
        j["resource"]["aws_iam_role"]["client"] = json!({
            "name": "fixture-api-client",
            "assume_role_policy": "{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"sts:AssumeRole\",\"Principal\":{\"AWS\":\"arn:aws:iam::123456789012:root\"}}]}",
            "inline_policy": [{"name": "invoke", "policy": "{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"execute-api:Invoke\",\"Resource\":\"${aws_api_gateway_rest_api.api.execution_arn}/test/*/items\"}]}"}]
        });
    });
    let m = Model::build(&load(dir.path()), "eu-west-1", Dynamic::default()).unwrap();
    let items = m.apis[0].resources.iter().find(|r| r.path == "/items").unwrap();
    assert!(items.methods[0].iam_auth && items.methods[0].authorizer_id.is_none());
    // Only the role granting execute-api:Invoke is a machine client's.
    assert_eq!(m.machine_roles.len(), 1, "{:?}", m.machine_roles);
    let role = &m.machine_roles[0];
    assert_eq!(
        (role.name.as_str(), role.arn.as_str()),
        ("fixture-api-client", "arn:aws:iam::123456789012:role/fixture-api-client")
    );
    let allowed = format!("arn:aws:execute-api:eu-west-1:123456789012:{}/test/GET/items", m.apis[0].id);
    assert_eq!(
        jobs_local::policy::decide(&role.policy.statements, "execute-api:Invoke", &allowed),
        jobs_local::policy::Decision::Allow
    );
}

#[test]
fn reads_the_webhook_rule_its_queue_target_the_secret_and_both_mappings() {
    let stacks = load(&fixture());
    // The stack's ephemeral password and the secret version that writes it
    // are not read: the local target generates the value.
    assert!(stacks.app().json.get("ephemeral").is_some());
    let m = Model::build(&stacks, "eu-west-1", Dynamic::default()).unwrap();

    let rule = &m.event_rules[0];
    assert_eq!(
        (rule.address.as_str(), rule.name.as_str(), rule.bus.as_str(), rule.enabled),
        ("aws_cloudwatch_event_rule.webhooks", "fixture-webhooks", "fixture-jobs", true)
    );
    assert_eq!(
        serde_json::from_str::<Value>(&rule.pattern).unwrap(),
        json!({"source": ["job-ingestion"], "detail-type": ["Job Completed", "Job Failed", "Job Cancelled"],
               "detail": {"callbackUrl": [{"exists": true}]}})
    );
    let target = &rule.targets[0];
    assert_eq!(
        (target.id.as_str(), target.queue_arn.as_str()),
        ("webhook-delivery-queue", "arn:aws:sqs:eu-west-1:123456789012:fixture-webhooks")
    );

    // The secret's ARN ends in a suffix only moto knows: a placeholder until
    // provisioning, in the secret, the sender's environment and its policy.
    let placeholder = Dynamic::pending_id(&Dynamic::key("app", "aws_secretsmanager_secret", "signing"));
    let secret = &m.secrets[0];
    assert_eq!((secret.name.as_str(), secret.arn.as_str()), ("fixture-webhook-signing", placeholder.as_str()));
    let sender = m.function("fixture-webhook-sender").unwrap();
    assert_eq!(sender.env["WEBHOOK_SIGNING_SECRET_ID"], placeholder);
    let allows = |m: &Model, arn: &str| {
        let role = &m.function("fixture-webhook-sender").unwrap().role;
        jobs_local::policy::decide(&role.statements, "secretsmanager:GetSecretValue", arn)
            == jobs_local::policy::Decision::Allow
    };
    assert!(allows(&m, &placeholder));

    let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:fixture-webhook-signing-Ab3dEf";
    let mut dynamic = Dynamic { sqs_endpoint: Some("http://127.0.0.1:4020".into()), ..Default::default() };
    dynamic.ids.insert(secret.key.clone(), arn.into());
    dynamic.ids.insert(Dynamic::key("cognito", "aws_cognito_user_pool", "pool"), "eu-west-1_Abc".into());
    dynamic.ids.insert(Dynamic::key("cognito", "aws_cognito_user_pool_client", "client"), "client123".into());
    let mut filled = m.clone();
    filled.fill(&dynamic).unwrap();
    assert_eq!(filled.secrets[0].arn, arn);
    assert_eq!(filled.function("fixture-webhook-sender").unwrap().env["WEBHOOK_SIGNING_SECRET_ID"], arn);
    assert!(allows(&filled, arn) && !allows(&filled, &placeholder));
    let consumer_role = &filled.function("fixture-consumer").unwrap().role;
    assert_eq!(
        jobs_local::policy::decide(&consumer_role.statements, "secretsmanager:GetSecretValue", arn),
        jobs_local::policy::Decision::ImplicitDeny
    );

    // Two event source mappings, each with its queue and function.
    let mappings: Vec<(&str, &str, u64, bool)> = m
        .mappings
        .iter()
        .map(|e| {
            (e.queue_arn.rsplit(':').next().unwrap(), e.function.as_str(), e.batch_size, e.report_batch_item_failures)
        })
        .collect();
    assert_eq!(
        mappings,
        [("fixture-jobs", "fixture-consumer", 5, true), ("fixture-webhooks", "fixture-webhook-sender", 10, true)]
    );
    assert_eq!(m.mappings[1].batching_window_secs, 1);
}

#[test]
fn names_what_the_local_target_cannot_do_with_rules_targets_and_secrets() {
    fn target(app: &mut Value) -> &mut Value {
        &mut app["resource"]["aws_cloudwatch_event_target"]["webhooks"]
    }
    let err = build_error(|j| {
        target(j)["arn"] = json!("${aws_lambda_function.items.arn}");
    });
    assert_eq!(
        err,
        "aws_cloudwatch_event_target.webhooks: field `arn`: `arn:aws:lambda:eu-west-1:123456789012:function:fixture-items` is a `lambda` target: the local target delivers events to the stack's SQS queues only"
    );
    let err = build_error(|j| {
        target(j)["arn"] = json!("arn:aws:sqs:eu-west-1:123456789012:elsewhere");
    });
    assert_eq!(
        err,
        "aws_cloudwatch_event_target.webhooks: field `arn`: `arn:aws:sqs:eu-west-1:123456789012:elsewhere` is not a queue of the stack"
    );
    let err = build_error(|j| {
        target(j)["input_transformer"] = json!({"input_template": "<detail>", "input_paths": {"detail": "$.detail"}});
    });
    assert!(
        err.starts_with(
            "aws_cloudwatch_event_target.webhooks: field `input_transformer`: the local target delivers the whole event"
        ),
        "{err}"
    );
    let err = build_error(|j| {
        target(j)["rule"] = json!("other");
    });
    assert_eq!(
        err,
        "aws_cloudwatch_event_target.webhooks: field `rule`: `other` is not a rule of the stack on the bus `fixture-jobs`"
    );
    let err = build_error(|j| {
        j["resource"]["aws_cloudwatch_event_rule"]["webhooks"]["event_bus_name"] = json!("elsewhere");
    });
    assert_eq!(
        err,
        "aws_cloudwatch_event_rule.webhooks: field `event_bus_name`: `elsewhere` is not an event bus of the stack"
    );
    let err = build_error(|j| {
        j["resource"]["aws_cloudwatch_event_rule"]["webhooks"]["event_pattern"] = json!("[\"job-ingestion\"]");
    });
    assert_eq!(
        err,
        "aws_cloudwatch_event_rule.webhooks: field `event_pattern`: not a JSON object: [\"job-ingestion\"]"
    );
    let err = build_error(|j| {
        j["resource"]["aws_cloudwatch_event_rule"]["webhooks"]["schedule_expression"] = json!("rate(5 minutes)");
    });
    assert!(err.contains("field `schedule_expression`: scheduled rules are not supported"), "{err}");
    let err = build_error(|j| {
        let secret = &mut j["resource"]["aws_secretsmanager_secret"]["signing"];
        secret.as_object_mut().unwrap().remove("name");
        secret["name_prefix"] = json!("fixture-");
    });
    assert_eq!(
        err,
        "aws_secretsmanager_secret.signing: field `name_prefix`: generated secret names are not supported: set `name`"
    );
    // A bus given by its ARN is the bus of that name; the value the secret
    // version writes is never read, whatever it refers to.
    let dir = edited_fixture(|j| {
        target(j)["event_bus_name"] = json!("${aws_cloudwatch_event_bus.jobs.arn}");
        j["resource"]["aws_secretsmanager_secret_version"]["signing"]["secret_string_wo"] = json!("${nope(1)}");
    });
    let m = Model::build(&load(dir.path()), "eu-west-1", Dynamic::default()).unwrap();
    assert_eq!(m.event_rules[0].targets.len(), 1);
}
