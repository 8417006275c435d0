//! What the local target reads of the stack's S3 event notifications
//! through SNS to functions: the `aws_sns_topic`s, the
//! `aws_s3_bucket_notification` topic configurations and the `lambda`
//! `aws_sns_topic_subscription`s, with each subscribed function's
//! dead-letter queue and asynchronous retries. The bridge that delivers them
//! is `crate::notifications` (an event source, a layer above).

use std::time::Duration;

use anyhow::bail;

use super::Function;
use crate::stack::{FieldError, Resolver, Stack};

/// An SNS topic of the stack.
#[derive(Debug, Clone)]
pub struct Topic {
    pub address: String,
    pub name: String,
    pub arn: String,
}

/// One topic configuration of a bucket's notification.
#[derive(Debug, Clone)]
pub struct BucketTopic {
    pub address: String,
    pub bucket: String,
    pub id: Option<String>,
    pub topic_arn: String,
    pub events: Vec<String>,
    pub filter_prefix: Option<String>,
    pub filter_suffix: Option<String>,
}

/// A `lambda` subscription of a topic.
#[derive(Debug, Clone)]
pub struct LambdaSubscription {
    pub address: String,
    pub topic_arn: String,
    pub function: String,
    /// The function's `dead_letter_config.target_arn`: where an asynchronous
    /// invocation goes after its retries fail.
    pub dead_letter_queue_arn: Option<String>,
    /// How Lambda retries the function's asynchronous invocations
    /// (`aws_lambda_function_event_invoke_config`, else Lambda's defaults).
    pub retry: AsyncRetry,
}

/// Lambda's handling of an asynchronous invocation: a function error is
/// retried `retry_attempts` times; an event that waits for a free instance
/// (throttled) is kept until it is `max_event_age` old.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsyncRetry {
    pub retry_attempts: u32,
    pub max_event_age: Duration,
}

impl Default for AsyncRetry {
    /// Lambda's defaults: 2 retries, 6 hours.
    fn default() -> Self {
        AsyncRetry { retry_attempts: 2, max_event_age: Duration::from_secs(6 * 3600) }
    }
}

/// What the local target reads of the stack's event notifications.
#[derive(Debug, Clone, Default)]
pub struct Notifications {
    pub topics: Vec<Topic>,
    pub bucket_topics: Vec<BucketTopic>,
    pub subscriptions: Vec<LambdaSubscription>,
}

impl Notifications {
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty() && self.bucket_topics.is_empty() && self.subscriptions.is_empty()
    }

    /// The topic a bucket publishes to (the first), for outputs.json.
    pub fn bucket_topic_arn(&self) -> Option<&str> {
        self.bucket_topics.first().map(|b| b.topic_arn.as_str())
    }
}

/// Reads one stack's topics, bucket notifications and `lambda`
/// subscriptions (called by [`crate::model::Model::build`] once the
/// functions are known).
pub fn read_stack(
    r: &Resolver<'_>,
    stack: &Stack,
    functions: &[Function],
    out: &mut Notifications,
) -> Result<(), FieldError> {
    read_topics(r, stack, &mut out.topics)?;
    read_bucket_topics(r, stack, &mut out.bucket_topics)?;
    read_lambda_subscriptions(r, stack, functions, &mut out.subscriptions)
}

fn read_topics(r: &Resolver<'_>, stack: &Stack, topics: &mut Vec<Topic>) -> Result<(), FieldError> {
    for (name, body) in stack.resources("aws_sns_topic") {
        let res = r.res(stack, "aws_sns_topic", name, body);
        if res.raw("name").is_none() {
            return Err(res.error("name", "generated topic names are not supported: set `name`"));
        }
        if res.opt_bool("fifo_topic")? == Some(true) {
            return Err(res.error("fifo_topic", "FIFO topics are not supported by the local target"));
        }
        let topic = res.str("name")?;
        let arn = format!("arn:aws:sns:{}:{}:{topic}", r.region, r.account_id);
        topics.push(Topic { address: res.address(), name: topic, arn });
    }
    Ok(())
}

/// The `topic` configurations of the bucket notifications (the only kind
/// supported).
fn read_bucket_topics(r: &Resolver<'_>, stack: &Stack, bucket_topics: &mut Vec<BucketTopic>) -> Result<(), FieldError> {
    for (name, body) in stack.resources("aws_s3_bucket_notification") {
        let res = r.res(stack, "aws_s3_bucket_notification", name, body);
        for other in ["queue", "lambda_function"] {
            if !res.blocks(other).is_empty() {
                return Err(res.error(other, "only `topic` notifications are supported by the local target"));
            }
        }
        if res.opt_bool("eventbridge")? == Some(true) {
            return Err(res.error("eventbridge", "EventBridge notifications are not supported by the local target"));
        }
        let bucket = res.str("bucket")?;
        for t in res.blocks("topic") {
            bucket_topics.push(BucketTopic {
                address: res.address(),
                bucket: bucket.clone(),
                id: t.opt_str("id")?,
                topic_arn: t.str("topic_arn")?,
                events: t.str_list("events")?,
                filter_prefix: t.opt_str("filter_prefix")?.filter(|s| !s.is_empty()),
                filter_suffix: t.opt_str("filter_suffix")?.filter(|s| !s.is_empty()),
            });
        }
    }
    Ok(())
}

fn read_lambda_subscriptions(
    r: &Resolver<'_>,
    stack: &Stack,
    functions: &[Function],
    subscriptions: &mut Vec<LambdaSubscription>,
) -> Result<(), FieldError> {
    for (name, body) in stack.resources("aws_sns_topic_subscription") {
        let res = r.res(stack, "aws_sns_topic_subscription", name, body);
        // Other protocols (the alarm e-mail) have no local counterpart.
        if res.opt_str("protocol")?.as_deref() != Some("lambda") {
            continue;
        }
        let endpoint = res.str("endpoint")?;
        let function = functions
            .iter()
            .find(|f| f.arn == endpoint || f.name == endpoint)
            .ok_or_else(|| res.error("endpoint", format!("`{endpoint}` is not a function of the stack")))?;
        let dead_letter_queue_arn = dead_letter_queue_arn(r, stack, function)?;
        let retry = async_retry(r, stack, function)?;
        subscriptions.push(LambdaSubscription {
            address: res.address(),
            topic_arn: res.str("topic_arn")?,
            function: function.name.clone(),
            dead_letter_queue_arn,
            retry,
        });
    }
    Ok(())
}

/// The function's `dead_letter_config.target_arn`, if it has one.
fn dead_letter_queue_arn(r: &Resolver<'_>, stack: &Stack, function: &Function) -> Result<Option<String>, FieldError> {
    let mut dead_letter_queue_arn = None;
    for (fname, fbody) in stack.resources("aws_lambda_function") {
        let f = r.res(stack, "aws_lambda_function", fname, fbody);
        if f.address() == function.address
            && let Some(dlq) = f.block("dead_letter_config")
        {
            dead_letter_queue_arn = dlq.opt_str("target_arn")?;
        }
    }
    Ok(dead_letter_queue_arn)
}

/// The function's asynchronous retries: Lambda's defaults, changed by an
/// `aws_lambda_function_event_invoke_config` of its unqualified (or
/// `$LATEST`) version.
fn async_retry(r: &Resolver<'_>, stack: &Stack, function: &Function) -> Result<AsyncRetry, FieldError> {
    let mut retry = AsyncRetry::default();
    for (cname, cbody) in stack.resources("aws_lambda_function_event_invoke_config") {
        let c = r.res(stack, "aws_lambda_function_event_invoke_config", cname, cbody);
        let named = c.str("function_name")?;
        if named != function.name && named != function.arn {
            continue;
        }
        if c.opt_str("qualifier")?.is_some_and(|q| q != "$LATEST") {
            continue;
        }
        if let Some(n) = c.opt_u64("maximum_retry_attempts")? {
            retry.retry_attempts = n.min(2) as u32;
        }
        if let Some(age) = c.opt_u64("maximum_event_age_in_seconds")? {
            retry.max_event_age = Duration::from_secs(age);
        }
    }
    Ok(retry)
}

/// Checks that every topic named by a notification or subscription is a
/// topic of the stack.
pub fn check(n: &Notifications) -> anyhow::Result<()> {
    let known = |arn: &str| n.topics.iter().any(|t| t.arn == arn);
    for b in &n.bucket_topics {
        if !known(&b.topic_arn) {
            bail!("{}: field `topic.topic_arn`: `{}` is not a topic of the stack", b.address, b.topic_arn);
        }
    }
    for s in &n.subscriptions {
        if !known(&s.topic_arn) {
            bail!("{}: field `topic_arn`: `{}` is not a topic of the stack", s.address, s.topic_arn);
        }
    }
    Ok(())
}
