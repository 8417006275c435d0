// Completion webhooks (issue 17): the job events bus's rule sends ended jobs
// with a callback URL to an encrypted delivery queue, which feeds
// webhook-sender; the deliveries are signed with a secret whose value never
// enters the Terraform state.
import {
  WEBHOOK_BACKOFF_BASE_SECONDS,
  WEBHOOK_BACKOFF_CAP_SECONDS,
  WEBHOOK_MAX_ATTEMPTS,
  webhookRetrySchedule,
} from "../constructs/job-webhooks";
import {
  Block,
  lambdaFor,
  list,
  mappingFor,
  policyStatements,
  ref,
  referencedName,
  resourcesOf,
  Statement,
  SynthesizedStack,
  synthAllStacks,
  synthStacks,
  theResource,
  writeFixtureZips,
} from "./support";

const DAY_SECONDS = 24 * 60 * 60;
const ACCOUNT = "${data.aws_caller_identity.current-account.account_id}";
const REGION = "${data.aws_region.current-region.region}";

let app: SynthesizedStack;
let keyArn: string;
let queueName: string;
let queue: Block;
let dlqName: string;
let dlq: Block;
let ruleName: string;
let rule: Block;
let busName: string;
let secretName: string;
let secret: Block;
let senderName: string;
let sender: Block;

beforeAll(() => {
  app = synthAllStacks({ JOBS_LAMBDA_ZIP_DIR: writeFixtureZips() }).app;
  keyArn = ref("aws_kms_key", theResource(app.json, "aws_kms_key")[0], "arn");
  [queueName, queue] = theResource(app.json, "aws_sqs_queue", (q) => q.name === "jobs-dev-webhooks");
  [dlqName, dlq] = theResource(app.json, "aws_sqs_queue", (q) => q.name === "jobs-dev-webhooks-dlq");
  [ruleName, rule] = theResource(app.json, "aws_cloudwatch_event_rule");
  [busName] = theResource(app.json, "aws_cloudwatch_event_bus");
  [secretName, secret] = theResource(app.json, "aws_secretsmanager_secret");
  [senderName, sender] = lambdaFor(app.json, "webhook-sender");
});

const total = (delays: number[]) => delays.reduce((a, b) => a + b, 0);

describe("the retry schedule", () => {
  test("doubles from 10 s, capped at an hour", () => {
    expect(WEBHOOK_BACKOFF_BASE_SECONDS).toBe(10);
    expect(WEBHOOK_BACKOFF_CAP_SECONDS).toBe(3600);
    expect(webhookRetrySchedule(10, 3600, 12)).toEqual([10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]);
    // One attempt: no delay.
    expect(webhookRetrySchedule(10, 3600, 1)).toEqual([]);
  });

  test("WEBHOOK_MAX_ATTEMPTS is the fewest attempts whose delays span 24 hours", () => {
    const delays = webhookRetrySchedule(WEBHOOK_BACKOFF_BASE_SECONDS, WEBHOOK_BACKOFF_CAP_SECONDS, WEBHOOK_MAX_ATTEMPTS);
    expect(delays).toHaveLength(WEBHOOK_MAX_ATTEMPTS - 1);
    expect(total(delays)).toBeGreaterThanOrEqual(DAY_SECONDS);
    const oneFewer = webhookRetrySchedule(WEBHOOK_BACKOFF_BASE_SECONDS, WEBHOOK_BACKOFF_CAP_SECONDS, WEBHOOK_MAX_ATTEMPTS - 1);
    expect(total(oneFewer)).toBeLessThan(DAY_SECONDS);
    expect(WEBHOOK_MAX_ATTEMPTS).toBe(33);
  });

  test("webhook-sender gets the same schedule", () => {
    const env = sender.environment.variables;
    expect(Number(env.WEBHOOK_BACKOFF_BASE_SECONDS)).toBe(WEBHOOK_BACKOFF_BASE_SECONDS);
    expect(Number(env.WEBHOOK_BACKOFF_CAP_SECONDS)).toBe(WEBHOOK_BACKOFF_CAP_SECONDS);
    expect(Number(env.WEBHOOK_MAX_ATTEMPTS)).toBe(WEBHOOK_MAX_ATTEMPTS);
  });
});

describe("the delivery queue", () => {
  test("moves a message to its DLQ after WEBHOOK_MAX_ATTEMPTS receives", () => {
    expect(JSON.parse(queue.redrive_policy)).toEqual({
      deadLetterTargetArn: ref("aws_sqs_queue", dlqName, "arn"),
      maxReceiveCount: WEBHOOK_MAX_ATTEMPTS,
    });
  });

  test("keeps a message 4 days, longer than the whole schedule; the DLQ 14 days", () => {
    expect(queue.message_retention_seconds).toBe(345_600);
    const schedule = total(webhookRetrySchedule(WEBHOOK_BACKOFF_BASE_SECONDS, WEBHOOK_BACKOFF_CAP_SECONDS, WEBHOOK_MAX_ATTEMPTS));
    // Every attempt may also hold the message for a whole visibility timeout.
    expect(queue.message_retention_seconds).toBeGreaterThan(schedule + WEBHOOK_MAX_ATTEMPTS * queue.visibility_timeout_seconds);
    expect(dlq.message_retention_seconds).toBe(14 * DAY_SECONDS);
  });

  test("has a visibility timeout of at least six times the sender's timeout", () => {
    // https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html
    expect(sender.timeout).toBe(30);
    expect(queue.visibility_timeout_seconds).toBeGreaterThanOrEqual(6 * sender.timeout);
  });

  test("both queues are encrypted with the stack's key, and only the delivery queue may redrive into its DLQ", () => {
    expect(queue.kms_master_key_id).toBe(keyArn);
    expect(dlq.kms_master_key_id).toBe(keyArn);
    const [, allow] = theResource(
      app.json,
      "aws_sqs_queue_redrive_allow_policy",
      (p) => p.queue_url === ref("aws_sqs_queue", dlqName, "url"),
    );
    expect(JSON.parse(allow.redrive_allow_policy)).toEqual({
      redrivePermission: "byQueue",
      sourceQueueArns: [ref("aws_sqs_queue", queueName, "arn")],
    });
  });

  test("feeds webhook-sender in batches of 10, reporting partial batch failures, never above its reservation", () => {
    const [, mapping] = mappingFor(app.json, "webhook-sender");
    expect(mapping).toMatchObject({
      event_source_arn: ref("aws_sqs_queue", queueName, "arn"),
      function_name: ref("aws_lambda_function", senderName, "function_name"),
      batch_size: 10,
      function_response_types: ["ReportBatchItemFailures"],
    });
    expect(mapping.scaling_config.maximum_concurrency).toBeGreaterThanOrEqual(2);
    expect(mapping.scaling_config.maximum_concurrency).toBeLessThanOrEqual(sender.reserved_concurrent_executions);
  });
});

describe("the rule on the job events bus", () => {
  test("matches ended jobs (completed, failed, cancelled) that carry a callback URL", () => {
    expect(rule).toMatchObject({
      name: "jobs-dev-webhooks",
      event_bus_name: ref("aws_cloudwatch_event_bus", busName, "name"),
    });
    expect(JSON.parse(rule.event_pattern)).toEqual({
      source: ["job-ingestion"],
      "detail-type": ["Job Completed", "Job Failed", "Job Cancelled"],
      detail: { callbackUrl: [{ exists: true }] },
    });
  });

  test("has one target: the delivery queue, with the whole event, and the delivery DLQ for what it cannot deliver", () => {
    const targets = resourcesOf(app.json, "aws_cloudwatch_event_target");
    expect(targets).toHaveLength(1);
    const [, target] = targets[0];
    expect(target).toEqual({
      rule: ref("aws_cloudwatch_event_rule", ruleName, "name"),
      event_bus_name: ref("aws_cloudwatch_event_bus", busName, "name"),
      target_id: "webhook-delivery-queue",
      arn: ref("aws_sqs_queue", queueName, "arn"),
      dead_letter_config: { arn: ref("aws_sqs_queue", dlqName, "arn") },
      retry_policy: { maximum_event_age_in_seconds: DAY_SECONDS, maximum_retry_attempts: 185 },
    });
    // No input, input path or transformer: the message is the event.
    for (const field of ["input", "input_path", "input_transformer"]) expect(target[field]).toBeUndefined();
  });

  test("EventBridge may send to the delivery queue and its DLQ, for this rule only", () => {
    const policies = resourcesOf(app.json, "aws_sqs_queue_policy").filter(([, p]) =>
      [queueName, dlqName].some((q) => p.queue_url === ref("aws_sqs_queue", q, "url")),
    );
    expect(policies).toHaveLength(2);
    for (const q of [queueName, dlqName]) {
      const [, policy] = policies.find(([, p]) => p.queue_url === ref("aws_sqs_queue", q, "url"))!;
      expect(JSON.parse(policy.policy).Statement).toEqual([
        {
          Sid: "WebhookRule",
          Effect: "Allow",
          Principal: { Service: "events.amazonaws.com" },
          Action: "sqs:SendMessage",
          Resource: ref("aws_sqs_queue", q, "arn"),
          Condition: { ArnEquals: { "aws:SourceArn": ref("aws_cloudwatch_event_rule", ruleName, "arn") } },
        },
      ]);
    }
  });

  test("no other policy lets EventBridge send to any queue", () => {
    const sends = policyStatements(app.json).filter(
      ({ type, statement }) => type === "aws_sqs_queue_policy" && (statement.Principal as Block)?.Service === "events.amazonaws.com",
    );
    expect(sends).toHaveLength(2);
  });

  test("the key policy lets EventBridge encrypt for this rule only, from this account", () => {
    // https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-troubleshooting.html#eb-sqs-encrypted
    const statements: Statement[] = JSON.parse(theResource(app.json, "aws_kms_key")[1].policy).Statement;
    const ruleArn = `arn:aws:events:${REGION}:${ACCOUNT}:rule/jobs-dev-jobs/jobs-dev-webhooks`;
    expect(statements.filter((s) => s.Sid === "EventBridgeWebhookRule")).toEqual([
      {
        Sid: "EventBridgeWebhookRule",
        Effect: "Allow",
        Principal: { Service: "events.amazonaws.com" },
        Action: ["kms:GenerateDataKey", "kms:Decrypt"],
        Resource: "*",
        Condition: { StringEquals: { "aws:SourceAccount": ACCOUNT }, ArnLike: { "aws:SourceArn": [ruleArn] } },
      },
    ]);
    // The ARN in the key policy is the rule's: a rule on a custom bus is rule/<bus>/<rule>.
    const bus = app.json.resource!.aws_cloudwatch_event_bus[busName];
    expect(ruleArn.endsWith(`:rule/${bus.name}/${rule.name}`)).toBe(true);
  });
});

describe("the signing secret", () => {
  test("is <prefix>-webhook-signing, encrypted with the stack's key", () => {
    expect(secret).toMatchObject({ name: "jobs-dev-webhook-signing", kms_key_id: keyArn });
  });

  test("is deleted at once outside prod (its name is free for the next deploy), kept 30 days in prod", () => {
    expect(secret.recovery_window_in_days).toBe(0);
    const prod = synthStacks({ JOBS_STAGE: "prod", JOBS_LAMBDA_ZIP_DIR: writeFixtureZips() }).app.json;
    expect(theResource(prod, "aws_secretsmanager_secret")[1]).toMatchObject({
      name: "jobs-prod-webhook-signing",
      recovery_window_in_days: 30,
    });
  });

  test("its value is made during the apply and written write-only: in no state, no plan and no output", () => {
    const ephemeral = (app.withComments as Block).ephemeral?.aws_secretsmanager_random_password ?? {};
    expect(Object.keys(ephemeral)).toHaveLength(1);
    const [passwordName, password] = Object.entries(ephemeral)[0] as [string, Block];
    expect(password).toMatchObject({ password_length: 64, exclude_punctuation: true, include_space: false });
    const [, version] = theResource(app.json, "aws_secretsmanager_secret_version");
    expect(version).toEqual({
      secret_id: ref("aws_secretsmanager_secret", secretName, "id"),
      secret_string_wo: `\${ephemeral.aws_secretsmanager_random_password.${passwordName}.random_password}`,
      secret_string_wo_version: 1,
    });
    // Not the data source, whose value changes on every plan and is kept in the state.
    expect(app.json.data?.aws_secretsmanager_random_password).toBeUndefined();
    const uses = JSON.stringify(app.withComments).split("ephemeral.aws_secretsmanager_random_password.").length - 1;
    expect(uses).toBe(1);
  });

  test("is not rotated on a schedule, a skip that says why", () => {
    const comments = (app.withComments as Block).resource.aws_secretsmanager_secret[secretName]["//"];
    expect(comments.checkov).toEqual([expect.stringMatching(/^checkov:skip=CKV2_AWS_57: a rotated HMAC key breaks every receiver's verification/)]);
    expect(resourcesOf(app.json, "aws_secretsmanager_secret_rotation")).toEqual([]);
  });
});

describe("webhook-sender", () => {
  test("gets exactly its configuration", () => {
    const [tableName] = theResource(app.json, "aws_dynamodb_table", (t) => t.name === "jobs-dev-jobs");
    expect(sender.environment.variables).toEqual({
      WEBHOOK_QUEUE_URL: ref("aws_sqs_queue", queueName, "url"),
      WEBHOOK_SIGNING_SECRET_ID: ref("aws_secretsmanager_secret", secretName, "arn"),
      JOBS_TABLE_NAME: ref("aws_dynamodb_table", tableName, "name"),
      WEBHOOK_DESTINATIONS: "public-https",
      WEBHOOK_BACKOFF_BASE_SECONDS: "10",
      WEBHOOK_BACKOFF_CAP_SECONDS: "3600",
      WEBHOOK_MAX_ATTEMPTS: String(WEBHOOK_MAX_ATTEMPTS),
      METRICS_NAMESPACE: "JobIngestion/dev",
      RUST_LOG: "info",
    });
  });

  test("reserves 5 executions, runs at most 30 s", () => {
    expect(sender).toMatchObject({ function_name: "jobs-dev-webhook-sender", reserved_concurrent_executions: 5, timeout: 30 });
  });

  test("its role's only statements about the secret and the queue name them exactly", () => {
    const role = referencedName(sender.role, "aws_iam_role");
    const statements = resourcesOf(app.json, "aws_iam_role_policy")
      .filter(([, p]) => p.role === ref("aws_iam_role", role, "id"))
      .flatMap(([, p]) => JSON.parse(p.policy).Statement as Statement[]);
    const on = (prefix: string) => statements.filter((s) => list(s.Action).some((a) => a.startsWith(prefix)));
    expect(on("secretsmanager:")).toEqual([
      { Effect: "Allow", Action: ["secretsmanager:GetSecretValue"], Resource: [ref("aws_secretsmanager_secret", secretName, "arn")] },
    ]);
    expect(on("sqs:").flatMap((s) => list(s.Resource))).toEqual([ref("aws_sqs_queue", queueName, "arn")]);
  });

  test("no other role may read the signing secret", () => {
    const readers = policyStatements(app.json).filter(({ statement }) =>
      list(statement.Action).some((a) => a.startsWith("secretsmanager:")),
    );
    expect(readers).toHaveLength(1);
  });
});

test("the outputs name the secret and the two queues", () => {
  expect(app.json.output!.webhookSigningSecretName.value).toBe(ref("aws_secretsmanager_secret", secretName, "name"));
  expect(app.json.output!.webhookQueueUrl.value).toBe(ref("aws_sqs_queue", queueName, "url"));
  expect(app.json.output!.webhookDeadLetterQueueUrl.value).toBe(ref("aws_sqs_queue", dlqName, "url"));
});

test("any message in the delivery DLQ alarms, to the alarm topic", () => {
  const [topicName] = theResource(app.json, "aws_sns_topic", (t) => /-alarms$/.test(t.name));
  const [, alarm] = theResource(app.json, "aws_cloudwatch_metric_alarm", (a) => a.alarm_name === "jobs-dev-webhooks-dlq-messages");
  expect(alarm).toMatchObject({
    namespace: "AWS/SQS",
    metric_name: "ApproximateNumberOfMessagesVisible",
    dimensions: { QueueName: ref("aws_sqs_queue", dlqName, "name") },
    statistic: "Maximum",
    threshold: 0,
    comparison_operator: "GreaterThanThreshold",
    alarm_actions: [ref("aws_sns_topic", topicName, "arn")],
  });
});
