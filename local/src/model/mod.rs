//! What the local target runs, read from the synthesized stacks: queues,
//! tables, buckets, event buses and rules, secrets, functions, event source
//! mappings, the REST API and the Cognito user pool. Only the fields listed in docs/contract.md are read;
//! every error names the resource address and the field.

pub mod iam;
pub mod notifications;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use regex::Regex;
use serde_json::{Map, Value, json};

use crate::schema::Schema;
use crate::stack::{Dynamic, FieldError, Res, Resolver, Stack, Stacks, function_name_from};
use crate::vtl;

/// The account id moto uses by default; ARNs and queue URLs use it.
pub const ACCOUNT_ID: &str = "123456789012";

#[derive(Debug, Clone)]
pub struct Model {
    pub region: String,
    pub account_id: String,
    pub queues: Vec<Queue>,
    pub tables: Vec<Table>,
    pub buckets: Vec<Bucket>,
    /// EventBridge buses (`aws_cloudwatch_event_bus`): created empty, a
    /// subscriber adds its own rules.
    pub event_buses: Vec<EventBus>,
    /// EventBridge rules (`aws_cloudwatch_event_rule`) with their targets
    /// (`aws_cloudwatch_event_target`), all queues of the stack.
    pub event_rules: Vec<EventRule>,
    /// Secrets Manager secrets (`aws_secretsmanager_secret`): created with a
    /// value the local target generates on every start (the stack's own
    /// value comes from an ephemeral resource, never in any state).
    pub secrets: Vec<Secret>,
    pub functions: Vec<Function>,
    pub mappings: Vec<EventSourceMapping>,
    pub apis: Vec<RestApi>,
    pub user_pools: Vec<UserPool>,
    pub user_pool_clients: Vec<UserPoolClient>,
    /// S3 bucket notifications → SNS topics → `lambda` subscriptions.
    pub notifications: notifications::Notifications,
    /// Roles whose policies grant `execute-api:Invoke`: the local target
    /// issues credentials of a session of each, for AWS_IAM methods.
    pub machine_roles: Vec<MachineRole>,
}

#[derive(Debug, Clone)]
pub struct MachineRole {
    pub name: String,
    pub arn: String,
    pub policy: iam::RolePolicy,
}

#[derive(Debug, Clone)]
pub struct Queue {
    pub address: String,
    pub name: String,
    pub arn: String,
    pub url: String,
    /// SQS attributes to create the queue with (VisibilityTimeout, ...,
    /// RedrivePolicy as JSON).
    pub attributes: BTreeMap<String, String>,
    pub visibility_timeout: u64,
    pub redrive: Option<Redrive>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Redrive {
    pub dead_letter_target_arn: String,
    pub max_receive_count: u64,
}

#[derive(Debug, Clone)]
pub struct Table {
    pub address: String,
    pub name: String,
    pub hash_key: String,
    pub range_key: Option<String>,
    /// (name, type S|N|B)
    pub attributes: Vec<(String, String)>,
    pub global_secondary_indexes: Vec<SecondaryIndex>,
    pub ttl_attribute: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SecondaryIndex {
    pub name: String,
    pub hash_key: String,
    pub range_key: Option<String>,
    pub projection_type: String,
    pub non_key_attributes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Bucket {
    pub address: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct EventBus {
    pub address: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct EventRule {
    pub address: String,
    pub name: String,
    /// The bus's name (`default` when the stack names none).
    pub bus: String,
    /// The event pattern, as the stack writes it (a JSON object).
    pub pattern: String,
    /// `state` (or the older `is_enabled`): a disabled rule sends nothing.
    pub enabled: bool,
    pub targets: Vec<EventTarget>,
}

/// Where a rule sends the events it matches: a queue of the stack, the
/// whole event as the message body.
#[derive(Debug, Clone)]
pub struct EventTarget {
    pub address: String,
    /// `target_id` (the resource's name when the stack sets none).
    pub id: String,
    pub queue_arn: String,
    /// `sqs_target.message_group_id`, for a FIFO queue.
    pub message_group_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Secret {
    pub address: String,
    /// The key under which its ARN (moto's) goes into [`Dynamic::ids`].
    pub key: String,
    pub name: String,
    /// `arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 characters>`,
    /// moto's: a placeholder until [`Model::fill`].
    pub arn: String,
}

#[derive(Debug, Clone)]
pub struct Function {
    pub address: String,
    pub name: String,
    pub arn: String,
    /// The deployment zip (`filename`, resolved against the stack directory).
    pub zip: PathBuf,
    pub handler: String,
    pub runtime: String,
    pub timeout_secs: u64,
    pub memory_mb: u64,
    pub env: BTreeMap<String, String>,
    /// `reserved_concurrent_executions` (unset or -1: unreserved).
    pub reserved_concurrency: Option<u64>,
    /// What its role's policies allow (enforced on its calls).
    pub role: iam::RolePolicy,
    /// The roles of the stack it may assume (`sts:AssumeRole` on their ARN),
    /// with their policies: calls signed with a session of one are checked
    /// against that role's.
    pub assumable_roles: Vec<(String, iam::RolePolicy)>,
}

#[derive(Debug, Clone)]
pub struct EventSourceMapping {
    pub address: String,
    pub queue_arn: String,
    pub queue_url: String,
    pub function: String,
    pub batch_size: u64,
    pub batching_window_secs: u64,
    pub report_batch_item_failures: bool,
    pub maximum_concurrency: Option<u64>,
    pub enabled: bool,
}

#[derive(Debug, Clone)]
pub struct RestApi {
    pub address: String,
    pub id: String,
    pub name: String,
    pub stages: Vec<String>,
    pub resources: Vec<ApiResource>,
    pub authorizers: Vec<Authorizer>,
    /// By response type (`UNAUTHORIZED`, `DEFAULT_4XX`, ...).
    pub gateway_responses: BTreeMap<String, GatewayResponse>,
}

#[derive(Debug, Clone)]
pub struct ApiResource {
    pub id: String,
    /// `/job-status/{jobId}` (the root is `/`).
    pub path: String,
    pub methods: Vec<Method>,
}

#[derive(Debug, Clone)]
pub struct Method {
    pub address: String,
    /// `GET`, `POST`, ... or `ANY`.
    pub http_method: String,
    /// The authorizer's id for `CUSTOM`, `None` for `NONE` and `AWS_IAM`.
    pub authorizer_id: Option<String>,
    /// `AWS_IAM`: the caller signs with SigV4 and IAM authorizes
    /// `execute-api:Invoke` on the method.
    pub iam_auth: bool,
    /// Request body models to validate against, by content type: set when
    /// the method's request validator validates the body.
    pub body_models: BTreeMap<String, Schema>,
    pub integration: Option<Integration>,
}

#[derive(Debug, Clone)]
pub struct Integration {
    pub address: String,
    pub kind: IntegrationKind,
    /// `integration.request.header.<name>` → value source.
    pub request_headers: Vec<(String, ParamSource)>,
    pub request_templates: BTreeMap<String, vtl::Template>,
    pub passthrough: Passthrough,
    pub timeout_ms: u64,
    pub responses: Vec<IntegrationResponse>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum IntegrationKind {
    /// `AWS` to SQS: the Query-protocol request goes to `/<account>/<queue>`.
    /// `max_message_bytes` is the queue's MaximumMessageSize, which the
    /// gateway checks itself (moto counts characters, SQS bytes).
    Sqs { path: String, max_message_bytes: usize },
    /// `AWS_PROXY` to a function.
    LambdaProxy { function: String },
    /// `MOCK`: the request template's `statusCode` selects the response.
    Mock,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passthrough {
    WhenNoMatch,
    WhenNoTemplates,
    Never,
}

/// Where a mapped parameter's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamSource {
    Literal(String),
    RequestHeader(String),
    RequestQuery(String),
    RequestPath(String),
    IntegrationResponseHeader(String),
}

#[derive(Debug, Clone)]
pub struct IntegrationResponse {
    pub address: String,
    pub status_code: u16,
    /// Full-match regex on the backend's status code; `None` = the default.
    pub selection_pattern: Option<Regex>,
    pub templates: BTreeMap<String, vtl::Template>,
    /// `method.response.header.<name>` → value source.
    pub headers: Vec<(String, ParamSource)>,
}

#[derive(Debug, Clone)]
pub struct Authorizer {
    pub address: String,
    pub id: String,
    pub name: String,
    pub function: String,
    /// Lower-case header name the token is read from.
    pub identity_header: String,
    pub validation: Option<Regex>,
    pub ttl_secs: u64,
}

#[derive(Debug, Clone)]
pub struct GatewayResponse {
    pub address: String,
    pub status_code: Option<u16>,
    pub templates: BTreeMap<String, vtl::Template>,
    /// `gatewayresponse.header.<name>` → value source.
    pub headers: Vec<(String, ParamSource)>,
}

#[derive(Debug, Clone)]
pub struct UserPool {
    pub address: String,
    /// The key under which its moto id goes into [`Dynamic::ids`].
    pub key: String,
    pub name: String,
    /// The CreateUserPool request (JSON protocol).
    pub create_request: Value,
    pub password_min_length: u64,
    pub username_is_email: bool,
}

#[derive(Debug, Clone)]
pub struct UserPoolClient {
    pub address: String,
    pub key: String,
    /// The pool's [`UserPool::key`].
    pub pool_key: String,
    pub name: String,
    /// The CreateUserPoolClient request without `UserPoolId`.
    pub create_request: Value,
}

type Result<T> = std::result::Result<T, FieldError>;

/// SQS's maximum message size when a queue sets none: 1 MiB since 2025
/// (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html).
pub const SQS_DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_576;

fn err(address: &str, field: &str, reason: impl Into<String>) -> FieldError {
    FieldError { address: address.to_string(), field: field.to_string(), expr: None, reason: reason.into() }
}

impl Model {
    /// Reads the model. With an empty [`Dynamic`], the values only moto
    /// knows (queue URLs, user pool and client ids, secrets' ARNs) are placeholders
    /// ([`Dynamic::fill`]): `jobs-local run` builds it so before anything
    /// starts, which checks every field, and [`Model::fill`]s it once
    /// provisioning has them.
    pub fn build(stacks: &Stacks, region: &str, dynamic: Dynamic) -> Result<Model> {
        let resolver = Resolver::new(stacks, region, ACCOUNT_ID, dynamic);
        let mut m = Model {
            region: region.to_string(),
            account_id: ACCOUNT_ID.to_string(),
            queues: Vec::new(),
            tables: Vec::new(),
            buckets: Vec::new(),
            event_buses: Vec::new(),
            event_rules: Vec::new(),
            secrets: Vec::new(),
            functions: Vec::new(),
            mappings: Vec::new(),
            apis: Vec::new(),
            user_pools: Vec::new(),
            user_pool_clients: Vec::new(),
            notifications: Default::default(),
            machine_roles: Vec::new(),
        };
        // What stands alone first, then what names it (a rule's targets
        // name queues, a mapping its function, ...), in every stack.
        for stack in stacks.stacks.values() {
            read_standalone(&resolver, stack, &mut m)?;
        }
        for stack in stacks.stacks.values() {
            read_dependent(&resolver, stack, &mut m)?;
        }
        check_dead_letter_queues(&m)?;
        Ok(m)
    }

    pub fn function(&self, name: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.name == name)
    }

    pub fn queue_by_arn(&self, arn: &str) -> Option<&Queue> {
        self.queues.iter().find(|q| q.arn == arn)
    }

    /// Puts the values only moto knows into a model built before they were
    /// (with an empty [`Dynamic`]): the SQS endpoint into the queue URLs,
    /// the secrets' ARNs into the secrets, and the user pool and client
    /// ids, secrets' ARNs and queue URLs into the functions' environments
    /// and role policies. The model is the one `build` gives
    /// with `dynamic`; where a placeholder sits in a field this does not
    /// fill (a stack the local target does not expect), that is an error.
    pub fn fill(&mut self, dynamic: &Dynamic) -> std::result::Result<(), String> {
        let fill = |s: &mut String| *s = dynamic.fill(s);
        let fill_policy = |p: &mut iam::RolePolicy| {
            for st in &mut p.statements {
                for patterns in [&mut st.actions, &mut st.resources] {
                    match patterns {
                        crate::policy::Patterns::AnyOf(list) | crate::policy::Patterns::NoneOf(list) => {
                            list.iter_mut().for_each(fill)
                        }
                    }
                }
            }
        };
        self.queues.iter_mut().for_each(|q| fill(&mut q.url));
        self.mappings.iter_mut().for_each(|m| fill(&mut m.queue_url));
        self.secrets.iter_mut().for_each(|s| fill(&mut s.arn));
        for f in &mut self.functions {
            f.env.values_mut().for_each(fill);
            fill_policy(&mut f.role);
            f.assumable_roles.iter_mut().for_each(|(_, p)| fill_policy(p));
        }
        self.machine_roles.iter_mut().for_each(|m| fill_policy(&mut m.policy));
        let everything = format!("{self:?}");
        match dynamic.placeholders().into_iter().find(|p| everything.contains(p.as_str())) {
            Some(p) => Err(format!(
                "`{p}`: a value only known once moto runs (a queue URL, a user pool or client id, a secret's ARN) is used by a field the local target reads before it is known; only functions' environments and role policies may use it"
            )),
            None => Ok(()),
        }
    }
}

fn queue(res: &Res<'_>) -> Result<Queue> {
    if res.raw("name").is_none() && res.raw("name_prefix").is_some() {
        return Err(res.error("name_prefix", "generated queue names are not supported: set `name`"));
    }
    let name = res.str("name")?;
    let r = res.resolver;
    let arn = format!("arn:aws:sqs:{}:{}:{name}", r.region, r.account_id);
    let endpoint = r.dynamic.sqs_endpoint.as_deref().unwrap_or(Dynamic::PENDING_SQS_ENDPOINT);
    let url = format!("{endpoint}/{}/{name}", r.account_id);
    let mut attributes = BTreeMap::new();
    let mut fields = vec![
        ("VisibilityTimeout", "visibility_timeout_seconds"),
        ("MessageRetentionPeriod", "message_retention_seconds"),
        ("DelaySeconds", "delay_seconds"),
        ("MaximumMessageSize", "max_message_size"),
        ("ReceiveMessageWaitTimeSeconds", "receive_wait_time_seconds"),
    ];
    if res.opt_bool("fifo_queue")? == Some(true) {
        attributes.insert("FifoQueue".to_string(), "true".to_string());
        fields.push(("ContentBasedDeduplication", "content_based_deduplication"));
    }
    for (attr, field) in fields {
        if let Some(v) = res.opt_str(field)? {
            attributes.insert(attr.to_string(), v);
        }
    }
    let visibility_timeout = res.opt_u64("visibility_timeout_seconds")?.unwrap_or(30);
    let redrive = match res.opt_str("redrive_policy")? {
        None => None,
        Some(text) if text.is_empty() => None,
        Some(text) => {
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| res.error("redrive_policy", format!("not valid JSON ({e}): {text}")))?;
            let arn = v
                .get("deadLetterTargetArn")
                .and_then(Value::as_str)
                .ok_or_else(|| res.error("redrive_policy", "has no deadLetterTargetArn"))?
                .to_string();
            let count = match v.get("maxReceiveCount") {
                Some(Value::Number(n)) => n.as_u64(),
                Some(Value::String(s)) => s.parse().ok(),
                _ => None,
            }
            .ok_or_else(|| res.error("redrive_policy", "has no numeric maxReceiveCount"))?;
            attributes.insert(
                "RedrivePolicy".into(),
                json!({"deadLetterTargetArn": arn, "maxReceiveCount": count.to_string()}).to_string(),
            );
            Some(Redrive { dead_letter_target_arn: arn, max_receive_count: count })
        }
    };
    Ok(Queue { address: res.address(), name, arn, url, attributes, visibility_timeout, redrive })
}

/// The resources that name no other of the model: queues, tables, buckets,
/// event buses, secrets, functions (their roles are read with them) and
/// user pools.
fn read_standalone(r: &Resolver<'_>, stack: &Stack, m: &mut Model) -> Result<()> {
    for (name, body) in stack.resources("aws_sqs_queue") {
        m.queues.push(queue(&r.res(stack, "aws_sqs_queue", name, body))?);
    }
    for (name, body) in stack.resources("aws_dynamodb_table") {
        m.tables.push(table(&r.res(stack, "aws_dynamodb_table", name, body))?);
    }
    for (name, body) in stack.resources("aws_s3_bucket") {
        let res = r.res(stack, "aws_s3_bucket", name, body);
        if res.raw("bucket").is_none() && res.raw("bucket_prefix").is_some() {
            return Err(res.error("bucket_prefix", "generated bucket names are not supported: set `bucket`"));
        }
        m.buckets.push(Bucket { address: res.address(), name: res.str("bucket")? });
    }
    for (name, body) in stack.resources("aws_cloudwatch_event_bus") {
        let res = r.res(stack, "aws_cloudwatch_event_bus", name, body);
        m.event_buses.push(EventBus { address: res.address(), name: res.str("name")? });
    }
    for (name, body) in stack.resources("aws_secretsmanager_secret") {
        m.secrets.push(secret(&r.res(stack, "aws_secretsmanager_secret", name, body))?);
    }
    for (name, body) in stack.resources("aws_lambda_function") {
        m.functions.push(function(&r.res(stack, "aws_lambda_function", name, body))?);
    }
    for (name, body) in stack.resources("aws_cognito_user_pool") {
        m.user_pools.push(user_pool(&r.res(stack, "aws_cognito_user_pool", name, body))?);
    }
    Ok(())
}

/// The resources that name others of the model: event rules and their
/// targets, user pool clients, event source mappings, REST APIs, bucket
/// notifications, machine-client roles.
fn read_dependent(r: &Resolver<'_>, stack: &Stack, m: &mut Model) -> Result<()> {
    for (name, body) in stack.resources("aws_cloudwatch_event_rule") {
        m.event_rules.push(event_rule(&r.res(stack, "aws_cloudwatch_event_rule", name, body), m)?);
    }
    for (name, body) in stack.resources("aws_cloudwatch_event_target") {
        event_target(&r.res(stack, "aws_cloudwatch_event_target", name, body), m)?;
    }
    for (name, body) in stack.resources("aws_cognito_user_pool_client") {
        let res = r.res(stack, "aws_cognito_user_pool_client", name, body);
        let client = user_pool_client(&res, &m.user_pools, r)?;
        m.user_pool_clients.push(client);
    }
    for (name, body) in stack.resources("aws_lambda_event_source_mapping") {
        let res = r.res(stack, "aws_lambda_event_source_mapping", name, body);
        if let Some(esm) = event_source_mapping(&res, m)? {
            m.mappings.push(esm);
        }
    }
    for (name, _) in stack.resources("aws_api_gateway_rest_api") {
        m.apis.push(rest_api(r, stack, name, m)?);
    }
    notifications::read_stack(r, stack, &m.functions, &mut m.notifications)?;
    for (name, arn, policy) in iam::machine_client_roles(r, stack)? {
        m.machine_roles.push(MachineRole { name, arn, policy });
    }
    Ok(())
}

/// Every redrive policy names a queue of the stack.
fn check_dead_letter_queues(m: &Model) -> Result<()> {
    for q in &m.queues {
        if let Some(rd) = &q.redrive
            && !m.queues.iter().any(|d| d.arn == rd.dead_letter_target_arn)
        {
            return Err(err(
                &q.address,
                "redrive_policy",
                format!("deadLetterTargetArn `{}` is not a queue of the stack", rd.dead_letter_target_arn),
            ));
        }
    }
    Ok(())
}

/// A secret: its name, and its ARN as moto will give it (a placeholder until
/// provisioning; its value is generated then, never read from the stack).
fn secret(res: &Res<'_>) -> Result<Secret> {
    if res.raw("name").is_none() && res.raw("name_prefix").is_some() {
        return Err(res.error("name_prefix", "generated secret names are not supported: set `name`"));
    }
    let key = Dynamic::key(&res.stack.name, res.rtype, res.name);
    Ok(Secret { address: res.address(), arn: res.resolver.dynamic_id_by_key(&key), key, name: res.str("name")? })
}

/// A bus named by a rule or target: its name (`event_bus_name` takes a name
/// or an ARN), `default` when unset.
fn bus_name(res: &Res<'_>) -> Result<String> {
    let bus = res.opt_str("event_bus_name")?.unwrap_or_else(|| "default".into());
    Ok(match bus.split_once(":event-bus/") {
        Some((_, name)) if bus.starts_with("arn:") => name.to_string(),
        _ => bus,
    })
}

/// A rule that matches events on a bus of the stack (or the default bus);
/// its targets are added by [`event_target`].
fn event_rule(res: &Res<'_>, m: &Model) -> Result<EventRule> {
    if res.raw("name").is_none() && res.raw("name_prefix").is_some() {
        return Err(res.error("name_prefix", "generated rule names are not supported: set `name`"));
    }
    if res.raw("schedule_expression").is_some() {
        return Err(res.error("schedule_expression", "scheduled rules are not supported: nothing runs them locally"));
    }
    let bus = bus_name(res)?;
    if bus != "default" && !m.event_buses.iter().any(|b| b.name == bus) {
        return Err(res.error("event_bus_name", format!("`{bus}` is not an event bus of the stack")));
    }
    let pattern = res.str("event_pattern")?;
    if !serde_json::from_str::<Value>(&pattern).is_ok_and(|p| p.is_object()) {
        return Err(res.error("event_pattern", format!("not a JSON object: {pattern}")));
    }
    let enabled = match res.opt_str("state")?.as_deref() {
        Some("DISABLED") => false,
        Some(_) => true,
        None => res.opt_bool("is_enabled")?.unwrap_or(true),
    };
    Ok(EventRule { address: res.address(), name: res.str("name")?, bus, pattern, enabled, targets: Vec::new() })
}

/// A rule's target, added to its rule: only a queue of the stack, which
/// gets the whole event (the one kind the local target delivers: moto's
/// EventBridge sends to its own SQS).
fn event_target(res: &Res<'_>, m: &mut Model) -> Result<()> {
    for field in ["input", "input_path", "input_transformer"] {
        if res.raw(field).is_some() {
            return Err(res.error(
                field,
                "the local target delivers the whole event to a queue: inputs and input transformers are not supported",
            ));
        }
    }
    let arn = res.str("arn")?;
    let Some(queue) = m.queue_by_arn(&arn) else {
        let kind = arn.split(':').nth(2).filter(|s| !s.is_empty()).unwrap_or("unknown");
        let reason = if kind == "sqs" {
            format!("`{arn}` is not a queue of the stack")
        } else {
            format!("`{arn}` is a `{kind}` target: the local target delivers events to the stack's SQS queues only")
        };
        return Err(res.error("arn", reason));
    };
    let target = EventTarget {
        address: res.address(),
        id: res.opt_str("target_id")?.unwrap_or_else(|| res.name.to_string()),
        queue_arn: queue.arn.clone(),
        message_group_id: res.block("sqs_target").map(|t| t.opt_str("message_group_id")).transpose()?.flatten(),
    };
    let (rule, bus) = (res.str("rule")?, bus_name(res)?);
    let Some(owner) = m.event_rules.iter_mut().find(|r| r.name == rule && r.bus == bus) else {
        return Err(res.error("rule", format!("`{rule}` is not a rule of the stack on the bus `{bus}`")));
    };
    owner.targets.push(target);
    Ok(())
}

fn table(res: &Res<'_>) -> Result<Table> {
    let mut attributes = Vec::new();
    for a in res.blocks("attribute") {
        attributes.push((a.str("name")?, a.str("type")?));
    }
    let mut global_secondary_indexes = Vec::new();
    for g in res.blocks("global_secondary_index") {
        global_secondary_indexes.push(SecondaryIndex {
            name: g.str("name")?,
            hash_key: g.str("hash_key")?,
            range_key: g.opt_str("range_key")?,
            projection_type: g.opt_str("projection_type")?.unwrap_or_else(|| "ALL".into()),
            non_key_attributes: g.str_list("non_key_attributes")?,
        });
    }
    let ttl_attribute = match res.block("ttl") {
        Some(ttl) if ttl.opt_bool("enabled")?.unwrap_or(false) => ttl.opt_str("attribute_name")?,
        _ => None,
    };
    let hash_key = res.str("hash_key")?;
    if !attributes.iter().any(|(n, _)| *n == hash_key) {
        return Err(res.error("attribute", format!("the hash key `{hash_key}` is not declared as an attribute")));
    }
    Ok(Table {
        address: res.address(),
        name: res.str("name")?,
        hash_key,
        range_key: res.opt_str("range_key")?,
        attributes,
        global_secondary_indexes,
        ttl_attribute,
    })
}

fn function(res: &Res<'_>) -> Result<Function> {
    if res.opt_str("package_type")?.as_deref() == Some("Image") {
        return Err(res.error("package_type", "container image functions are not supported by the local target"));
    }
    let filename = res.opt_str("filename")?.ok_or_else(|| {
        res.error("filename", "the local target runs the deployment zip named by `filename` (s3_bucket/image_uri sources are not supported)")
    })?;
    let runtime = res.opt_str("runtime")?.unwrap_or_default();
    if !runtime.starts_with("provided") {
        return Err(res.error(
            "runtime",
            format!("runtime `{runtime}` is not supported: the local target runs `provided.*` (custom runtime) bootstraps as processes"),
        ));
    }
    let name = res.str("function_name")?;
    let r = res.resolver;
    let reserved = res.opt_i64("reserved_concurrent_executions")?;
    let role = iam::role_policy(res)?;
    let mut assumable_roles = Vec::new();
    for arn in iam::assumable_role_arns(&role) {
        let policy = iam::role_policy_of(res, "role", &arn)?;
        assumable_roles.push((arn, policy));
    }
    Ok(Function {
        address: res.address(),
        arn: crate::stack::lambda_arn(&r.region, &r.account_id, &name),
        name,
        zip: res.stack.dir.join(&filename),
        handler: res.opt_str("handler")?.unwrap_or_else(|| "bootstrap".into()),
        runtime,
        timeout_secs: res.opt_u64("timeout")?.unwrap_or(3),
        memory_mb: res.opt_u64("memory_size")?.unwrap_or(128),
        env: res.block("environment").map(|e| e.str_map("variables")).transpose()?.unwrap_or_default(),
        reserved_concurrency: reserved.filter(|n| *n >= 0).map(|n| n as u64),
        role,
        assumable_roles,
    })
}

fn event_source_mapping(res: &Res<'_>, m: &Model) -> Result<Option<EventSourceMapping>> {
    let source = res.str("event_source_arn")?;
    let Some(queue) = m.queue_by_arn(&source) else {
        return Err(res.error(
            "event_source_arn",
            format!("`{source}` is not a queue of the stack (only SQS event sources are supported)"),
        ));
    };
    let fname = res.str("function_name")?;
    let function = function_name_from(&fname).to_string();
    if m.function(&function).is_none() {
        return Err(res.error("function_name", format!("`{fname}` is not a function of the stack")));
    }
    let types = res.str_list("function_response_types")?;
    Ok(Some(EventSourceMapping {
        address: res.address(),
        queue_arn: queue.arn.clone(),
        queue_url: queue.url.clone(),
        function,
        batch_size: res.opt_u64("batch_size")?.unwrap_or(10).max(1),
        batching_window_secs: res.opt_u64("maximum_batching_window_in_seconds")?.unwrap_or(0),
        report_batch_item_failures: types.iter().any(|t| t == "ReportBatchItemFailures"),
        maximum_concurrency: res
            .block("scaling_config")
            .map(|s| s.opt_u64("maximum_concurrency"))
            .transpose()?
            .flatten(),
        enabled: res.opt_bool("enabled")?.unwrap_or(true),
    }))
}

fn user_pool(res: &Res<'_>) -> Result<UserPool> {
    let name = res.str("name")?;
    let mut req = Map::new();
    req.insert("PoolName".into(), json!(name));
    let mut password_min_length = 8;
    if let Some(pp) = res.block("password_policy") {
        let (policy, min_length) = password_policy(&pp)?;
        if let Some(n) = min_length {
            password_min_length = n;
        }
        req.insert("Policies".into(), json!({"PasswordPolicy": policy}));
    }
    let username_attributes = res.str_list("username_attributes")?;
    let username_is_email = username_attributes.iter().any(|a| a == "email");
    for (field, key) in [
        ("username_attributes", "UsernameAttributes"),
        ("alias_attributes", "AliasAttributes"),
        ("auto_verified_attributes", "AutoVerifiedAttributes"),
    ] {
        let list = res.str_list(field)?;
        if !list.is_empty() {
            req.insert(key.into(), json!(list));
        }
    }
    if let Some(mfa) = res.opt_str("mfa_configuration")? {
        req.insert("MfaConfiguration".into(), json!(mfa));
    }
    if let Some(uc) = res.block("username_configuration")
        && let Some(cs) = uc.opt_bool("case_sensitive")?
    {
        req.insert("UsernameConfiguration".into(), json!({"CaseSensitive": cs}));
    }
    if let Some(ac) = res.block("admin_create_user_config")
        && let Some(only) = ac.opt_bool("allow_admin_create_user_only")?
    {
        req.insert("AdminCreateUserConfig".into(), json!({"AllowAdminCreateUserOnly": only}));
    }
    let mut schema = Vec::new();
    for s in res.blocks("schema") {
        schema.push(schema_attribute(&s)?);
    }
    if !schema.is_empty() {
        req.insert("Schema".into(), Value::Array(schema));
    }
    Ok(UserPool {
        address: res.address(),
        key: Dynamic::key(&res.stack.name, res.rtype, res.name),
        name,
        create_request: Value::Object(req),
        password_min_length,
        username_is_email,
    })
}

/// A pool's `password_policy` block as CreateUserPool's `PasswordPolicy`,
/// and its minimum length if it sets one.
fn password_policy(pp: &Res<'_>) -> Result<(Map<String, Value>, Option<u64>)> {
    let mut p = Map::new();
    let min_length = pp.opt_u64("minimum_length")?;
    if let Some(n) = min_length {
        p.insert("MinimumLength".into(), json!(n));
    }
    for (field, key) in [
        ("require_lowercase", "RequireLowercase"),
        ("require_uppercase", "RequireUppercase"),
        ("require_numbers", "RequireNumbers"),
        ("require_symbols", "RequireSymbols"),
    ] {
        if let Some(b) = pp.opt_bool(field)? {
            p.insert(key.into(), json!(b));
        }
    }
    if let Some(n) = pp.opt_u64("temporary_password_validity_days")? {
        p.insert("TemporaryPasswordValidityDays".into(), json!(n));
    }
    Ok((p, min_length))
}

/// One `schema` block as a CreateUserPool `Schema` attribute.
fn schema_attribute(s: &Res<'_>) -> Result<Value> {
    let mut a = Map::new();
    a.insert("Name".into(), json!(s.str("name")?));
    a.insert("AttributeDataType".into(), json!(s.str("attribute_data_type")?));
    if let Some(b) = s.opt_bool("mutable")? {
        a.insert("Mutable".into(), json!(b));
    }
    if let Some(b) = s.opt_bool("required")? {
        a.insert("Required".into(), json!(b));
    }
    if let Some(c) = s.block("string_attribute_constraints") {
        let mut sc = Map::new();
        if let Some(v) = c.opt_str("min_length")? {
            sc.insert("MinLength".into(), json!(v));
        }
        if let Some(v) = c.opt_str("max_length")? {
            sc.insert("MaxLength".into(), json!(v));
        }
        a.insert("StringAttributeConstraints".into(), Value::Object(sc));
    }
    Ok(Value::Object(a))
}

fn user_pool_client(res: &Res<'_>, pools: &[UserPool], r: &Resolver<'_>) -> Result<UserPoolClient> {
    let pool_id = res.str("user_pool_id")?;
    // Each pool's id, resolved the same way (placeholder or moto's id).
    let pool = pools
        .iter()
        .find(|p| r.dynamic_id_by_key(&p.key) == pool_id)
        .ok_or_else(|| res.error("user_pool_id", format!("`{pool_id}` is not a user pool of the loaded stacks")))?;
    let name = res.str("name")?;
    let mut req = Map::new();
    req.insert("ClientName".into(), json!(name));
    let flows = res.str_list("explicit_auth_flows")?;
    if !flows.is_empty() {
        req.insert("ExplicitAuthFlows".into(), json!(flows));
    }
    if let Some(b) = res.opt_bool("generate_secret")? {
        req.insert("GenerateSecret".into(), json!(b));
    }
    for (field, key) in [
        ("refresh_token_validity", "RefreshTokenValidity"),
        ("access_token_validity", "AccessTokenValidity"),
        ("id_token_validity", "IdTokenValidity"),
    ] {
        if let Some(n) = res.opt_u64(field)? {
            req.insert(key.into(), json!(n));
        }
    }
    if let Some(u) = res.block("token_validity_units") {
        let mut units = Map::new();
        for (field, key) in
            [("access_token", "AccessToken"), ("id_token", "IdToken"), ("refresh_token", "RefreshToken")]
        {
            if let Some(v) = u.opt_str(field)? {
                units.insert(key.into(), json!(v));
            }
        }
        req.insert("TokenValidityUnits".into(), Value::Object(units));
    }
    if let Some(v) = res.opt_str("prevent_user_existence_errors")? {
        req.insert("PreventUserExistenceErrors".into(), json!(v));
    }
    for (field, key) in [
        ("supported_identity_providers", "SupportedIdentityProviders"),
        ("allowed_oauth_flows", "AllowedOAuthFlows"),
        ("allowed_oauth_scopes", "AllowedOAuthScopes"),
        ("callback_urls", "CallbackURLs"),
        ("logout_urls", "LogoutURLs"),
    ] {
        let list = res.str_list(field)?;
        if !list.is_empty() {
            req.insert(key.into(), json!(list));
        }
    }
    if let Some(b) = res.opt_bool("allowed_oauth_flows_user_pool_client")? {
        req.insert("AllowedOAuthFlowsUserPoolClient".into(), json!(b));
    }
    Ok(UserPoolClient {
        address: res.address(),
        key: Dynamic::key(&res.stack.name, res.rtype, res.name),
        pool_key: pool.key.clone(),
        name,
        create_request: Value::Object(req),
    })
}

fn full_match_regex(res: &Res<'_>, field: &str, pattern: &str) -> Result<Regex> {
    Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| res.error(field, format!("`{pattern}` is not a supported regular expression: {e}")))
}

fn parse_templates(res: &Res<'_>, field: &str) -> Result<BTreeMap<String, vtl::Template>> {
    res.str_map(field)?
        .into_iter()
        .map(|(ct, src)| {
            let t = vtl::Template::parse(&src).map_err(|e| FieldError {
                address: res.address(),
                field: format!("{field}[\"{ct}\"]"),
                expr: None,
                reason: format!("mapping template: {e}"),
            })?;
            Ok((ct.to_ascii_lowercase(), t))
        })
        .collect()
}

/// `'literal'`, `method.request.header.X`, ... → a parameter source.
fn param_source(res: &Res<'_>, field: &str, value: &str) -> Result<ParamSource> {
    if let Some(lit) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        return Ok(ParamSource::Literal(lit.to_string()));
    }
    if let Some(h) = value.strip_prefix("method.request.header.") {
        return Ok(ParamSource::RequestHeader(h.to_ascii_lowercase()));
    }
    if let Some(q) = value.strip_prefix("method.request.querystring.") {
        return Ok(ParamSource::RequestQuery(q.to_string()));
    }
    if let Some(p) = value.strip_prefix("method.request.path.") {
        return Ok(ParamSource::RequestPath(p.to_string()));
    }
    if let Some(h) = value.strip_prefix("integration.response.header.") {
        return Ok(ParamSource::IntegrationResponseHeader(h.to_ascii_lowercase()));
    }
    Err(res.error(field, format!("parameter source `{value}` is not supported by the local target")))
}

fn header_params(res: &Res<'_>, field: &str, prefix: &str) -> Result<Vec<(String, ParamSource)>> {
    let mut out = Vec::new();
    for (dest, value) in res.str_map(field)? {
        let Some(header) = dest.strip_prefix(prefix) else {
            return Err(
                res.error(field, format!("parameter destination `{dest}` is not supported (only `{prefix}<name>`)"))
            );
        };
        out.push((header.to_string(), param_source(res, &format!("{field}.{dest}"), &value)?));
    }
    Ok(out)
}

fn rest_api(r: &Resolver<'_>, stack: &Stack, name: &str, m: &Model) -> Result<RestApi> {
    let body = stack.resource("aws_api_gateway_rest_api", name).unwrap_or(&Value::Null);
    let api_res = r.res(stack, "aws_api_gateway_rest_api", name, body);
    if api_res.raw("body").is_some() {
        return Err(api_res.error("body", "OpenAPI-defined REST APIs are not supported: define resources and methods"));
    }
    let api = ApiParts { r, stack, id: Resolver::rest_api_id(&stack.name, name) };
    let paths = resource_paths(&api, &Resolver::root_resource_id(name))?;
    let authorizers = authorizers(&api, m)?;
    let integrations = integrations(&api, m, integration_responses(&api)?)?;
    let checks = BodyChecks { models: body_models(&api)?, validators: body_validators(&api)? };
    let resources = api_resources(&api, &paths, &authorizers, integrations, &checks)?;
    let stages = stages(&api)?;
    let gateway_responses = gateway_responses(&api)?;
    Ok(RestApi {
        address: api_res.address(),
        id: api.id,
        name: api_res.str("name")?,
        stages,
        resources,
        authorizers,
        gateway_responses,
    })
}

/// One REST API's parts in a stack: the resources of a type whose
/// `rest_api_id` is the API's.
struct ApiParts<'a> {
    r: &'a Resolver<'a>,
    stack: &'a Stack,
    id: String,
}

impl<'a> ApiParts<'a> {
    /// This API's resources of `rtype`, with their names, in the stack's
    /// order (an unreadable `rest_api_id` is an error where it is met).
    fn of(&self, rtype: &'static str) -> impl Iterator<Item = Result<(&'a str, Res<'a>)>> + '_ {
        self.stack.resources(rtype).filter_map(move |(name, body)| {
            let res = self.r.res(self.stack, rtype, name, body);
            match res.str("rest_api_id") {
                Ok(id) if id == self.id => Some(Ok((name, res))),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            }
        })
    }
}

/// Each resource's path by resource id (the root is `/`).
fn resource_paths(api: &ApiParts<'_>, root: &str) -> Result<BTreeMap<String, String>> {
    // id → (parent, path_part, address).
    let mut parents: HashMap<String, (String, String, String)> = HashMap::new();
    for part in api.of("aws_api_gateway_resource") {
        let (rname, res) = part?;
        parents.insert(
            Resolver::local_id("aws_api_gateway_resource", rname),
            (res.str("parent_id")?, res.str("path_part")?, res.address()),
        );
    }
    let mut paths: BTreeMap<String, String> = BTreeMap::new();
    paths.insert(root.to_string(), "/".into());
    for rid in parents.keys() {
        let mut parts = Vec::new();
        let mut cur = rid.clone();
        while cur != root {
            let (parent, part, address) = parents
                .get(&cur)
                .ok_or_else(|| err(&parents[rid].2, "parent_id", format!("`{cur}` is not a resource of this API")))?;
            parts.push(part.clone());
            if parts.len() > 64 {
                return Err(err(address, "parent_id", "resource parents form a cycle"));
            }
            cur = parent.clone();
        }
        parts.reverse();
        paths.insert(rid.clone(), format!("/{}", parts.join("/")));
    }
    Ok(paths)
}

fn authorizers(api: &ApiParts<'_>, m: &Model) -> Result<Vec<Authorizer>> {
    let mut authorizers = Vec::new();
    for part in api.of("aws_api_gateway_authorizer") {
        let (aname, res) = part?;
        authorizers.push(authorizer(&res, aname, m)?);
    }
    Ok(authorizers)
}

/// A TOKEN authorizer whose function is one of the stack's.
fn authorizer(res: &Res<'_>, aname: &str, m: &Model) -> Result<Authorizer> {
    let kind = res.opt_str("type")?.unwrap_or_else(|| "TOKEN".into());
    if kind != "TOKEN" {
        return Err(res.error("type", format!("`{kind}` authorizers are not supported (only TOKEN)")));
    }
    let uri = res.str("authorizer_uri")?;
    let function = function_name_from(&uri).to_string();
    if m.function(&function).is_none() {
        return Err(res.error("authorizer_uri", format!("`{uri}` does not invoke a function of the stack")));
    }
    let source = res.opt_str("identity_source")?.unwrap_or_else(|| "method.request.header.Authorization".into());
    let identity_header = source
        .strip_prefix("method.request.header.")
        .ok_or_else(|| {
            res.error(
                "identity_source",
                format!("`{source}`: a TOKEN authorizer reads a header (`method.request.header.<name>`)"),
            )
        })?
        .to_ascii_lowercase();
    let validation = match res.opt_str("identity_validation_expression")? {
        Some(p) if !p.is_empty() => Some(full_match_regex(res, "identity_validation_expression", &p)?),
        _ => None,
    };
    Ok(Authorizer {
        address: res.address(),
        id: Resolver::local_id("aws_api_gateway_authorizer", aname),
        name: res.str("name")?,
        function,
        identity_header,
        validation,
        ttl_secs: res.opt_u64("authorizer_result_ttl_in_seconds")?.unwrap_or(300),
    })
}

/// A method of a resource: (resource id, upper-case HTTP method).
type MethodKey = (String, String);

fn method_key(res: &Res<'_>) -> Result<MethodKey> {
    Ok((res.str("resource_id")?, res.str("http_method")?.to_ascii_uppercase()))
}

/// The integration responses by the method they answer.
fn integration_responses(api: &ApiParts<'_>) -> Result<HashMap<MethodKey, Vec<IntegrationResponse>>> {
    let mut int_responses: HashMap<MethodKey, Vec<IntegrationResponse>> = HashMap::new();
    for part in api.of("aws_api_gateway_integration_response") {
        let (_, res) = part?;
        let status = res.str("status_code")?;
        let status_code =
            status.parse::<u16>().map_err(|_| res.error("status_code", format!("`{status}` is not an HTTP status")))?;
        let selection_pattern = match res.opt_str("selection_pattern")? {
            Some(p) if !p.is_empty() => Some(full_match_regex(&res, "selection_pattern", &p)?),
            _ => None,
        };
        int_responses.entry(method_key(&res)?).or_default().push(IntegrationResponse {
            address: res.address(),
            status_code,
            selection_pattern,
            templates: parse_templates(&res, "response_templates")?,
            headers: header_params(&res, "response_parameters", "method.response.header.")?,
        });
    }
    Ok(int_responses)
}

/// The integrations by method, each with its responses; a response
/// without an integration is an error.
fn integrations(
    api: &ApiParts<'_>,
    m: &Model,
    mut int_responses: HashMap<MethodKey, Vec<IntegrationResponse>>,
) -> Result<HashMap<MethodKey, Integration>> {
    let mut integrations: HashMap<MethodKey, Integration> = HashMap::new();
    for part in api.of("aws_api_gateway_integration") {
        let (_, res) = part?;
        let key = method_key(&res)?;
        let kind = integration_kind(&res, &api.r.region, m)?;
        let passthrough = match res.opt_str("passthrough_behavior")?.as_deref() {
            None | Some("WHEN_NO_MATCH") => Passthrough::WhenNoMatch,
            Some("WHEN_NO_TEMPLATES") => Passthrough::WhenNoTemplates,
            Some("NEVER") => Passthrough::Never,
            Some(other) => return Err(res.error("passthrough_behavior", format!("unknown value `{other}`"))),
        };
        let responses = int_responses.remove(&key).unwrap_or_default();
        integrations.insert(
            key,
            Integration {
                address: res.address(),
                kind,
                request_headers: header_params(&res, "request_parameters", "integration.request.header.")?,
                request_templates: parse_templates(&res, "request_templates")?,
                passthrough,
                timeout_ms: res.opt_u64("timeout_milliseconds")?.unwrap_or(29_000),
                responses,
            },
        );
    }
    if let Some(((rid, method), list)) = int_responses.into_iter().next() {
        return Err(err(&list[0].address, "http_method", format!("no integration for {method} on resource `{rid}`")));
    }
    Ok(integrations)
}

/// What an integration calls: a queue of the stack (`AWS`), a function of
/// the stack (`AWS_PROXY`) or nothing (`MOCK`).
fn integration_kind(res: &Res<'_>, region: &str, m: &Model) -> Result<IntegrationKind> {
    Ok(match res.str("type")?.as_str() {
        "AWS" => {
            let uri = res.str("uri")?;
            let prefix = format!("arn:aws:apigateway:{region}:sqs:path/");
            let path = uri.strip_prefix(&prefix).ok_or_else(|| {
                res.error(
                    "uri",
                    format!("`{uri}`: only SQS integrations of the form `{prefix}<account>/<queue>` are supported"),
                )
            })?;
            let queue = path.rsplit('/').next().unwrap_or_default();
            let Some(queue) = m.queues.iter().find(|q| q.name == queue) else {
                return Err(res.error("uri", format!("`{uri}`: `{queue}` is not a queue of the stack")));
            };
            let max_message_bytes = queue
                .attributes
                .get("MaximumMessageSize")
                .and_then(|v| v.parse().ok())
                .unwrap_or(SQS_DEFAULT_MAX_MESSAGE_BYTES);
            IntegrationKind::Sqs { path: format!("/{path}"), max_message_bytes }
        }
        "AWS_PROXY" => {
            let uri = res.str("uri")?;
            let function = function_name_from(&uri).to_string();
            if !uri.contains(":lambda:path/") || m.function(&function).is_none() {
                return Err(res.error("uri", format!("`{uri}` does not invoke a function of the stack")));
            }
            IntegrationKind::LambdaProxy { function }
        }
        "MOCK" => IntegrationKind::Mock,
        other => {
            return Err(res.error(
                "type",
                format!("`{other}` integrations are not supported (AWS to SQS, AWS_PROXY to a function, MOCK)"),
            ));
        }
    })
}

/// Body models by name.
fn body_models(api: &ApiParts<'_>) -> Result<HashMap<String, Schema>> {
    let mut models: HashMap<String, Schema> = HashMap::new();
    for part in api.of("aws_api_gateway_model") {
        let (_, res) = part?;
        let schema = Schema::parse(&res.str("schema")?).map_err(|e| res.error("schema", e))?;
        models.insert(res.str("name")?, schema);
    }
    Ok(models)
}

/// Whether each request validator (by id) validates the body.
fn body_validators(api: &ApiParts<'_>) -> Result<HashMap<String, bool>> {
    let mut body_validators: HashMap<String, bool> = HashMap::new();
    for part in api.of("aws_api_gateway_request_validator") {
        let (name, res) = part?;
        if res.opt_bool("validate_request_parameters")?.unwrap_or(false) {
            return Err(res.error(
                "validate_request_parameters",
                "request parameter validation is not supported by the local target",
            ));
        }
        body_validators.insert(
            Resolver::local_id("aws_api_gateway_request_validator", name),
            res.opt_bool("validate_request_body")?.unwrap_or(false),
        );
    }
    Ok(body_validators)
}

/// What a method's request validator and request models check the body
/// against.
struct BodyChecks {
    models: HashMap<String, Schema>,
    /// Request validator id → whether it validates the body.
    validators: HashMap<String, bool>,
}

impl BodyChecks {
    /// The method's body models by content type: none unless its request
    /// validator validates the body.
    fn of_method(&self, res: &Res<'_>) -> Result<BTreeMap<String, Schema>> {
        let validates_body = match res.opt_str("request_validator_id")? {
            None => false,
            Some(vid) => *self.validators.get(&vid).ok_or_else(|| {
                res.error("request_validator_id", format!("`{vid}` is not a request validator of this API"))
            })?,
        };
        let mut body_models = BTreeMap::new();
        if validates_body {
            for (content_type, model) in res.str_map("request_models")? {
                let schema = self
                    .models
                    .get(&model)
                    .ok_or_else(|| res.error("request_models", format!("`{model}` is not a model of this API")))?;
                body_models.insert(content_type.to_ascii_lowercase(), schema.clone());
            }
        }
        Ok(body_models)
    }
}

/// The API's resources with their methods, each method with its
/// integration; an integration without a method is an error.
fn api_resources(
    api: &ApiParts<'_>,
    paths: &BTreeMap<String, String>,
    authorizers: &[Authorizer],
    mut integrations: HashMap<MethodKey, Integration>,
    checks: &BodyChecks,
) -> Result<Vec<ApiResource>> {
    let mut resources: BTreeMap<String, ApiResource> = paths
        .iter()
        .map(|(rid, path)| (rid.clone(), ApiResource { id: rid.clone(), path: path.clone(), methods: Vec::new() }))
        .collect();
    for part in api.of("aws_api_gateway_method") {
        let (_, res) = part?;
        let rid = res.str("resource_id")?;
        let http_method = res.str("http_method")?.to_ascii_uppercase();
        let (authorizer_id, iam_auth) = method_authorizer(&res, authorizers)?;
        let body_models = checks.of_method(&res)?;
        let integration = integrations.remove(&(rid.clone(), http_method.clone()));
        let resource = resources
            .get_mut(&rid)
            .ok_or_else(|| res.error("resource_id", format!("`{rid}` is not a resource of this API")))?;
        resource.methods.push(Method {
            address: res.address(),
            http_method,
            authorizer_id,
            iam_auth,
            body_models,
            integration,
        });
    }
    if let Some(((rid, method), i)) = integrations.into_iter().next() {
        return Err(err(&i.address, "http_method", format!("no method {method} on resource `{rid}`")));
    }
    Ok(resources.into_values().collect())
}

/// A method's authorizer id (`None` for `NONE` and `AWS_IAM`, one of the
/// API's for `CUSTOM`) and whether it is `AWS_IAM`.
fn method_authorizer(res: &Res<'_>, authorizers: &[Authorizer]) -> Result<(Option<String>, bool)> {
    match res.str("authorization")?.as_str() {
        "NONE" => Ok((None, false)),
        "AWS_IAM" => Ok((None, true)),
        "CUSTOM" => {
            let aid = res.str("authorizer_id")?;
            if !authorizers.iter().any(|a| a.id == aid) {
                return Err(res.error("authorizer_id", format!("`{aid}` is not an authorizer of this API")));
            }
            Ok((Some(aid), false))
        }
        other => Err(res.error("authorization", format!("`{other}` is not supported (NONE, CUSTOM or AWS_IAM)"))),
    }
}

/// The stage names of the API's stages and deployments, stages first.
fn stages(api: &ApiParts<'_>) -> Result<Vec<String>> {
    let mut stages = Vec::new();
    for part in api.of("aws_api_gateway_stage") {
        let (_, res) = part?;
        stages.push(res.str("stage_name")?);
    }
    for part in api.of("aws_api_gateway_deployment") {
        let (_, res) = part?;
        if let Some(s) = res.opt_str("stage_name")?
            && !stages.contains(&s)
        {
            stages.push(s);
        }
    }
    Ok(stages)
}

/// The API's gateway responses by response type.
fn gateway_responses(api: &ApiParts<'_>) -> Result<BTreeMap<String, GatewayResponse>> {
    let mut gateway_responses = BTreeMap::new();
    for part in api.of("aws_api_gateway_gateway_response") {
        let (_, res) = part?;
        let status_code = match res.opt_str("status_code")? {
            Some(s) => {
                Some(s.parse::<u16>().map_err(|_| res.error("status_code", format!("`{s}` is not an HTTP status")))?)
            }
            None => None,
        };
        gateway_responses.insert(
            res.str("response_type")?,
            GatewayResponse {
                address: res.address(),
                status_code,
                templates: parse_templates(&res, "response_templates")?,
                headers: header_params(&res, "response_parameters", "gatewayresponse.header.")?,
            },
        );
    }
    Ok(gateway_responses)
}
