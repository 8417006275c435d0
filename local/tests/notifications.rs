//! Bucket notifications, topics and `lambda` subscriptions read from a stack
//! (the hand-written fixture, edited), and what the local target refuses.

mod common;

use std::path::Path;

use common::{edited_fixture, fixture};
use jobs_local::model::Model;
use jobs_local::model::notifications;
use jobs_local::stack::{Dynamic, Stacks};
use serde_json::{Value, json};

/// A copy of the fixture whose app stack has the results bucket's events
/// going to a topic that invokes `consumer`, then changed by `edit`.
fn with_notifications(edit: impl FnOnce(&mut Value)) -> tempfile::TempDir {
    edited_fixture(|app| {
        let r = app["resource"].as_object_mut().unwrap();
        r.insert("aws_sns_topic".into(), json!({"events": {"name": "${var.prefix}-events"}}));
        r.insert(
            "aws_s3_bucket_notification".into(),
            json!({"results": {
                "bucket": "${aws_s3_bucket.results.id}",
                "topic": [{"id": "count", "topic_arn": "${aws_sns_topic.events.arn}",
                           "events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"], "filter_prefix": "results/"}],
                "depends_on": ["aws_sns_topic_policy.events"]
            }}),
        );
        r.insert(
            "aws_sns_topic_subscription".into(),
            json!({
                "counter": {"topic_arn": "${aws_sns_topic.events.arn}", "protocol": "lambda",
                            "endpoint": "${aws_lambda_function.consumer.arn}",
                            "redrive_policy": "{\"deadLetterTargetArn\":\"${aws_sqs_queue.dlq.arn}\"}"},
                "mail": {"topic_arn": "${aws_sns_topic.events.arn}", "protocol": "email", "endpoint": "${var.alarm_email}"}
            }),
        );
        app["resource"]["aws_lambda_function"]["consumer"]["dead_letter_config"] =
            json!({"target_arn": "${aws_sqs_queue.dlq.arn}"});
        edit(app);
    })
}

fn build(dir: &Path) -> Result<Model, String> {
    let stacks = Stacks::load(dir, "app").expect("fixture loads");
    Model::build(&stacks, "eu-west-1", Dynamic::default()).map_err(|e| e.to_string())
}

#[test]
fn reads_topics_bucket_notifications_and_lambda_subscriptions() {
    let dir = with_notifications(|_| {});
    let m = build(dir.path()).unwrap();
    let n = &m.notifications;
    let topic = "arn:aws:sns:eu-west-1:123456789012:fixture-events";
    assert_eq!(n.topics.len(), 1);
    assert_eq!((n.topics[0].name.as_str(), n.topics[0].arn.as_str()), ("fixture-events", topic));

    assert_eq!(n.bucket_topics.len(), 1);
    let b = &n.bucket_topics[0];
    assert_eq!(b.bucket, "fixture-results-123456789012");
    assert_eq!(b.topic_arn, topic);
    assert_eq!(b.events, ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]);
    assert_eq!(
        (b.id.as_deref(), b.filter_prefix.as_deref(), b.filter_suffix.as_deref()),
        (Some("count"), Some("results/"), None)
    );

    // The e-mail subscription has no local counterpart and is not read.
    assert_eq!(n.subscriptions.len(), 1);
    let s = &n.subscriptions[0];
    assert_eq!((s.topic_arn.as_str(), s.function.as_str()), (topic, "fixture-consumer"));
    assert_eq!(s.dead_letter_queue_arn.as_deref(), Some("arn:aws:sqs:eu-west-1:123456789012:fixture-dlq"));
    assert_eq!(n.bucket_topic_arn(), Some(topic));
    notifications::check(n).unwrap();
}

#[test]
fn a_stack_without_notifications_has_none() {
    let m = build(&fixture()).unwrap();
    assert!(m.notifications.is_empty());
}

#[test]
fn refuses_what_it_would_not_deliver() {
    let queue = with_notifications(|app| {
        app["resource"]["aws_s3_bucket_notification"]["results"]["queue"] =
            json!([{"queue_arn": "${aws_sqs_queue.jobs.arn}", "events": ["s3:ObjectCreated:*"]}]);
    });
    let err = build(queue.path()).unwrap_err();
    assert!(err.contains("aws_s3_bucket_notification.results") && err.contains("only `topic` notifications"), "{err}");

    let unknown_function = with_notifications(|app| {
        app["resource"]["aws_sns_topic_subscription"]["counter"]["endpoint"] =
            json!("arn:aws:lambda:eu-west-1:123456789012:function:elsewhere");
    });
    let err = build(unknown_function.path()).unwrap_err();
    assert!(err.contains("is not a function of the stack"), "{err}");

    let unknown_topic = with_notifications(|app| {
        app["resource"]["aws_s3_bucket_notification"]["results"]["topic"][0]["topic_arn"] =
            json!("arn:aws:sns:eu-west-1:123456789012:other");
    });
    let m = build(unknown_topic.path()).unwrap();
    let err = notifications::check(&m.notifications).unwrap_err().to_string();
    assert!(err.contains("is not a topic of the stack"), "{err}");
}

#[test]
fn reads_how_lambda_retries_the_subscribed_functions_events() {
    use jobs_local::model::notifications::AsyncRetry;
    use std::time::Duration;
    let defaults = build(with_notifications(|_| {}).path()).unwrap();
    assert_eq!(
        defaults.notifications.subscriptions[0].retry,
        AsyncRetry { retry_attempts: 2, max_event_age: Duration::from_secs(21_600) },
        "Lambda's defaults"
    );
    let configured = with_notifications(|app| {
        app["resource"]["aws_lambda_function_event_invoke_config"] = json!({"async": {
            "function_name": "${aws_lambda_function.consumer.function_name}",
            "maximum_retry_attempts": 1,
            "maximum_event_age_in_seconds": 3600
        }});
    });
    let m = build(configured.path()).unwrap();
    assert_eq!(
        m.notifications.subscriptions[0].retry,
        AsyncRetry { retry_attempts: 1, max_event_age: Duration::from_secs(3600) }
    );
}
