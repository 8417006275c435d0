//! Provisioning the fixture stack in moto (tests/fixtures/cdktf.out, edited):
//! the signing secret with a value of its own and the ARN moto gave it, and
//! the webhook rule delivering, as EventBridge does, the whole event of a
//! job's end with a callback URL to its queue and nothing else.
//!
//! Needs moto (`JOBS_LOCAL_MOTO_BIN`, else `.tools/venv/bin/moto_server`,
//! else `moto_server` on PATH) and fails without it.

mod common;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use common::{edited_fixture, with_moto};
use jobs_local::model::Model;
use jobs_local::provision::{self, Endpoints};
use jobs_local::stack::{Dynamic, Stacks};
use serde_json::{Value, json};

const REGION: &str = "eu-west-1";

fn events(endpoint: &str) -> aws_sdk_eventbridge::Client {
    use aws_sdk_eventbridge::config::{BehaviorVersion, Credentials, Region};
    aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .endpoint_url(endpoint)
            .build(),
    )
}

fn secrets(endpoint: &str) -> aws_sdk_secretsmanager::Client {
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
    aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .endpoint_url(endpoint)
            .build(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_and_the_webhook_rule_in_moto() {
    // Its own state folder: moto's corrections are written next to the logs.
    let state = tempfile::tempdir().unwrap();
    let logs = state.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    with_moto(&logs, exercise).await;
}

async fn exercise(moto: Endpoints) {
    // The fixture, plus a disabled rule that would send the same events to
    // the webhook DLQ.
    let dir = edited_fixture(|app| {
        app["resource"]["aws_cloudwatch_event_rule"]["off"] = json!({
            "name": "fixture-off", "event_bus_name": "${aws_cloudwatch_event_bus.jobs.name}", "state": "DISABLED",
            "event_pattern": "{\"source\":[\"job-ingestion\"]}"
        });
        app["resource"]["aws_cloudwatch_event_target"]["off"] = json!({
            "rule": "${aws_cloudwatch_event_rule.off.name}", "event_bus_name": "${aws_cloudwatch_event_bus.jobs.name}",
            "arn": "${aws_sqs_queue.webhooks_dlq.arn}"
        });
    });
    let stacks = Stacks::load(dir.path(), "app").unwrap();
    let mut dynamic = Dynamic { sqs_endpoint: Some(moto.sqs.clone()), ids: Default::default() };
    let mut model = Model::build(&stacks, REGION, dynamic.clone()).unwrap();
    provision::provision_data(&model, &moto).await.unwrap();
    let provisioned = provision::provision_secrets(&model, &moto, &mut dynamic).await.unwrap();
    model.fill(&dynamic).unwrap();

    // The secret: moto's ARN everywhere the stack names it, a value of
    // letters and digits only this start knows.
    let secret = &model.secrets[0];
    let suffix =
        secret.arn.strip_prefix("arn:aws:secretsmanager:eu-west-1:123456789012:secret:fixture-webhook-signing-");
    assert!(suffix.is_some_and(|s| s.len() == 6), "{}", secret.arn);
    assert_eq!(
        (provisioned[0].name.as_str(), provisioned[0].arn.as_str()),
        (secret.name.as_str(), secret.arn.as_str())
    );
    assert_eq!(model.function("fixture-webhook-sender").unwrap().env["WEBHOOK_SIGNING_SECRET_ID"], secret.arn);
    let stored = secrets(&moto.secretsmanager).get_secret_value().secret_id(&secret.arn).send().await.unwrap();
    assert_eq!(stored.name(), Some("fixture-webhook-signing"));
    assert_eq!(stored.secret_string(), Some(provisioned[0].value.as_str()));
    assert!(provisioned[0].value.len() == 64 && provisioned[0].value.chars().all(|c| c.is_ascii_alphanumeric()));

    // The rule: a job's end with a callback URL reaches the webhook queue,
    // one without, or another kind of event, does not.
    let entry = |detail_type: &str, detail: Value| {
        PutEventsRequestEntry::builder()
            .event_bus_name("fixture-jobs")
            .source("job-ingestion")
            .detail_type(detail_type)
            .detail(detail.to_string())
            .build()
    };
    let with_url = json!({"jobId": "job-1", "jobStatus": "complete", "callbackUrl": "http://127.0.0.1:9/hook"});
    let put = events(&moto.events)
        .put_events()
        .entries(entry("Job Completed", with_url.clone()))
        .entries(entry("Job Failed", json!({"jobId": "job-2", "jobStatus": "failed"})))
        .entries(entry("Job Started", json!({"jobId": "job-3", "callbackUrl": "http://127.0.0.1:9/hook"})))
        .send()
        .await
        .unwrap();
    assert_eq!(put.failed_entry_count(), 0);
    let event_id = put.entries()[0].event_id().unwrap().to_string();

    let sqs = provision::sqs_client(&moto.sqs, REGION);
    let queue_url = |name: &str| format!("{}/123456789012/{name}", moto.sqs);
    let received =
        sqs.receive_message().queue_url(queue_url("fixture-webhooks")).max_number_of_messages(10).send().await.unwrap();
    let bodies: Vec<Value> =
        received.messages().iter().map(|m| serde_json::from_str(m.body().unwrap()).unwrap()).collect();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    // The whole event, as EventBridge sends it to a queue target.
    let event = &bodies[0];
    let time = event["time"].as_str().unwrap();
    assert!(time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339).is_ok(), "{time}");
    assert_eq!(
        event,
        &json!({"version": "0", "id": event_id, "detail-type": "Job Completed", "source": "job-ingestion",
                "account": "123456789012", "time": time, "region": REGION, "resources": [], "detail": with_url})
    );
    // The disabled rule sent nothing.
    let dlq = sqs.receive_message().queue_url(queue_url("fixture-webhooks-dlq")).send().await.unwrap();
    assert!(dlq.messages().is_empty(), "{:?}", dlq.messages());
}
