import { DynamodbTable } from "@cdktn/provider-aws/lib/dynamodb-table";
import { LambdaEventSourceMapping } from "@cdktn/provider-aws/lib/lambda-event-source-mapping";
import { S3Bucket } from "@cdktn/provider-aws/lib/s3-bucket";
import { STAGE_THROTTLE } from "../constructs/job-api";
import {
  Block,
  CONTRACT_FUNCTIONS,
  lambdaFor,
  mappingFor,
  ref,
  referencedName,
  resourcesOf,
  statementsOfRole,
  SynthesizedStack,
  synthStacks,
  theResource,
  writeFixtureZips,
} from "./support";

let app: SynthesizedStack;
// Identified through the wiring (what the event source mapping connects),
// so the assertions hold whatever the resources are called.
let mapping: Block;
let jobQueueName: string;
let jobQueue: Block;
let processor: Block;
/** The stack's customer-managed key, as referenced: `${aws_kms_key.<name>.arn}`. */
let keyArn: string;

/** The jobs table (the others hold the object counters and the submits' idempotency keys). */
function jobsTable(): [string, Block] {
  return theResource(app.json, "aws_dynamodb_table", (t) => t.name === "jobs-dev-jobs");
}

/** The counters table. */
function countersTable(): [string, Block] {
  return theResource(app.json, "aws_dynamodb_table", (t) => t.name === "jobs-dev-counters");
}

/** The idempotency keys table. */
function idempotencyTable(): [string, Block] {
  return theResource(app.json, "aws_dynamodb_table", (t) => t.name === "jobs-dev-idempotency-keys");
}

/** The results bucket (the other bucket holds its access logs). */
function resultsBucket(): [string, Block] {
  return theResource(app.json, "aws_s3_bucket", (b) => /^jobs-dev-results-/.test(b.bucket));
}

beforeAll(() => {
  app = synthStacks({ JOBS_LAMBDA_ZIP_DIR: writeFixtureZips() }).app;
  [, mapping] = mappingFor(app.json, "job-processor");
  jobQueueName = referencedName(mapping.event_source_arn, "aws_sqs_queue");
  jobQueue = app.json.resource!.aws_sqs_queue[jobQueueName];
  processor = lambdaFor(app.json, "job-processor")[1];
  keyArn = ref("aws_kms_key", theResource(app.json, "aws_kms_key")[0], "arn");
});

describe("jobs queue and dead-letter queue", () => {
  test("the event source mapping feeds the jobs queue to the job processor", () => {
    const [processorName] = lambdaFor(app.json, "job-processor");
    expect(mapping.function_name).toBe(ref("aws_lambda_function", processorName, "function_name"));
  });

  test("the visibility timeout is at least 6 x the processor's timeout", () => {
    expect(processor.timeout).toBe(30);
    expect(jobQueue.visibility_timeout_seconds).toBeGreaterThanOrEqual(6 * processor.timeout);
  });

  test("the redrive policy names the DLQ and the processor's MAX_RECEIVE_COUNT", () => {
    const [dlqName, dlq] = theResource(app.json, "aws_sqs_queue", (q) => q.name === `${jobQueue.name}-dlq`);
    const redrive = JSON.parse(jobQueue.redrive_policy);
    expect(redrive).toEqual({
      deadLetterTargetArn: ref("aws_sqs_queue", dlqName, "arn"),
      maxReceiveCount: Number(processor.environment.variables.MAX_RECEIVE_COUNT),
    });
    expect(redrive.maxReceiveCount).toBe(4);
    // The DLQ keeps messages longer than the queue, for 14 days.
    expect(dlq.message_retention_seconds).toBe(14 * 24 * 3600);
    expect(dlq.message_retention_seconds).toBeGreaterThan(jobQueue.message_retention_seconds);
  });

  test("every queue (jobs, its DLQ, the object counter's DLQ, the webhook queue and its DLQ) is encrypted with the stack's customer-managed key", () => {
    const queues = resourcesOf(app.json, "aws_sqs_queue");
    expect(queues).toHaveLength(5);
    for (const [, queue] of queues) {
      expect(queue.kms_master_key_id).toBe(keyArn);
      expect(queue.sqs_managed_sse_enabled).toBeUndefined();
    }
  });

  test("only the jobs queue may redrive into the DLQ", () => {
    const [dlqName] = theResource(app.json, "aws_sqs_queue", (q) => q.name === `${jobQueue.name}-dlq`);
    const [, allow] = theResource(
      app.json,
      "aws_sqs_queue_redrive_allow_policy",
      (p) => p.queue_url === ref("aws_sqs_queue", dlqName, "url"),
    );
    expect(JSON.parse(allow.redrive_allow_policy)).toEqual({
      redrivePermission: "byQueue",
      sourceQueueArns: [ref("aws_sqs_queue", jobQueueName, "arn")],
    });
  });
});

test("the event source mapping batches and reports partial batch failures", () => {
  expect(app.text).toHaveResourceWithProperties(LambdaEventSourceMapping, {
    batch_size: 10,
    maximum_batching_window_in_seconds: 1,
    function_response_types: ["ReportBatchItemFailures"],
  });
  expect(mapping.scaling_config.maximum_concurrency).toBeGreaterThanOrEqual(2);
  // Never more pollers than the processor may run at once.
  expect(mapping.scaling_config.maximum_concurrency).toBeLessThanOrEqual(processor.reserved_concurrent_executions);
});

test("the jobs table is on demand, keyed by jobRequestId, recoverable and encrypted with the stack's key", () => {
  expect(app.text).toHaveResourceWithProperties(DynamodbTable, {
    name: "jobs-dev-jobs",
    billing_mode: "PAY_PER_REQUEST",
    hash_key: "jobRequestId",
    point_in_time_recovery: { enabled: true },
    server_side_encryption: { enabled: true, kms_key_arn: keyArn },
    deletion_protection_enabled: false,
  });
});

test("the jobs table lists a user's jobs through the owner-submittedAt index", () => {
  const [, table] = jobsTable();
  expect(table.attribute).toEqual([
    { name: "jobRequestId", type: "S" },
    { name: "owner", type: "S" },
    { name: "submittedAt", type: "S" },
  ]);
  expect(table.global_secondary_index).toEqual([
    { name: "owner-submittedAt", hash_key: "owner", range_key: "submittedAt", projection_type: "ALL" },
  ]);
});

test("finished job records expire with their results: TTL on expiresAt, the bucket's period", () => {
  const [, table] = jobsTable();
  expect(table.ttl).toEqual({ enabled: true, attribute_name: "expiresAt" });
  const [bucketName] = resultsBucket();
  const rule = (json: typeof app.json, bucket: string) =>
    theResource(json, "aws_s3_bucket_lifecycle_configuration", (b) => b.bucket === ref("aws_s3_bucket", bucket, "id"))[1]
      .rule[0];
  // One retention period drives both.
  expect(rule(app.json, bucketName).expiration).toEqual([{ days: 30 }]);
  expect(processor.environment.variables.RESULT_RETENTION_DAYS).toBe("30");
  const other = synthStacks({ JOBS_RESULTS_EXPIRATION_DAYS: "7", JOBS_LAMBDA_ZIP_DIR: writeFixtureZips() }).app.json;
  const [otherBucket] = theResource(other, "aws_s3_bucket", (b) => /-results-/.test(b.bucket));
  expect(rule(other, otherBucket).expiration).toEqual([{ days: 7 }]);
  expect(lambdaFor(other, "job-processor")[1].environment.variables.RESULT_RETENTION_DAYS).toBe("7");
});

describe("idempotency keys table", () => {
  test("is on demand, keyed by idempotencyKey alone, recoverable and encrypted with the stack's key", () => {
    const [, table] = idempotencyTable();
    expect(table).toMatchObject({
      name: "jobs-dev-idempotency-keys",
      billing_mode: "PAY_PER_REQUEST",
      hash_key: "idempotencyKey",
      point_in_time_recovery: { enabled: true },
      server_side_encryption: { enabled: true, kms_key_arn: keyArn },
      deletion_protection_enabled: false,
    });
    expect(table.range_key).toBeUndefined();
    expect(table.attribute).toEqual([{ name: "idempotencyKey", type: "S" }]);
    expect(table.global_secondary_index).toBeUndefined();
  });

  test("claimed keys expire: TTL on expiresAt", () => {
    expect(idempotencyTable()[1].ttl).toEqual({ enabled: true, attribute_name: "expiresAt" });
  });

  test("deletion protection follows the configuration, like the other tables", () => {
    const prod = synthStacks({ JOBS_STAGE: "prod", JOBS_LAMBDA_ZIP_DIR: writeFixtureZips() }).app.json;
    const protectedTables = resourcesOf(prod, "aws_dynamodb_table").map(([, t]) => [t.name, t.deletion_protection_enabled]);
    expect(protectedTables).toContainEqual(["jobs-prod-idempotency-keys", true]);
    expect(new Set(protectedTables.map(([, on]) => on))).toEqual(new Set([true]));
  });

  test("job-commands gets its name as IDEMPOTENCY_TABLE_NAME, and the stack outputs it", () => {
    const name = ref("aws_dynamodb_table", idempotencyTable()[0], "name");
    expect(lambdaFor(app.json, "job-commands")[1].environment.variables.IDEMPOTENCY_TABLE_NAME).toBe(name);
    expect(app.json.output!.idempotencyTableName.value).toBe(name);
  });
});

test("the customer-managed key rotates and lets CloudWatch Logs of this region use it for this stack's log groups only", () => {
  const [, key] = theResource(app.json, "aws_kms_key");
  expect(key.enable_key_rotation).toBe(true);
  const statements = JSON.parse(key.policy).Statement;
  const logs = statements.find((s: Block) => s.Sid === "CloudWatchLogs");
  expect(logs.Principal).toEqual({ Service: expect.stringMatching(/^logs\.\$\{data\.aws_region\./) });
  const groups = "arn:aws:logs:${data.aws_region.current-region.region}:${data.aws_caller_identity.current-account.account_id}:log-group:";
  // The functions' groups (/aws/lambda/jobs-dev-<function>) and the API's access log group: not every group of the account.
  expect(logs.Condition).toEqual({
    ArnLike: {
      "kms:EncryptionContext:aws:logs:arn": [
        `${groups}/aws/lambda/jobs-dev-*`,
        `${groups}/aws/apigateway/jobs-dev-api`,
        // The web ACL's log of blocked requests (api-rate-limits.ts).
        `${groups}aws-waf-logs-jobs-dev-api`,
      ],
    },
  });
  // Nothing is granted to an anonymous principal.
  expect(statements.every((s: Block) => s.Principal !== "*" && s.Principal?.AWS !== "*")).toBe(true);
});

describe("results bucket", () => {
  let bucketName: string;
  let logBucketName: string;
  /** The one resource of `type` configuring the bucket `name`. */
  const configOf = (type: string, name: string) =>
    theResource(app.json, type, (b) => b.bucket === ref("aws_s3_bucket", name, "id"))[1];
  beforeAll(() => {
    [bucketName] = resultsBucket();
    [logBucketName] = theResource(app.json, "aws_s3_bucket", (b) => /^jobs-dev-logs-/.test(b.bucket));
  });

  test("is named after the stage and account and destroyed with the stack", () => {
    expect(app.text).toHaveResourceWithProperties(S3Bucket, {
      bucket: expect.stringMatching(/^jobs-dev-results-/),
      force_destroy: true,
    });
  });

  test.each(["results", "access log"])("the %s bucket blocks all public access", (which) => {
    expect(configOf("aws_s3_bucket_public_access_block", which === "results" ? bucketName : logBucketName)).toMatchObject({
      block_public_acls: true,
      block_public_policy: true,
      ignore_public_acls: true,
      restrict_public_buckets: true,
    });
  });

  test("encrypts objects with the stack's key and keeps versions", () => {
    expect(configOf("aws_s3_bucket_server_side_encryption_configuration", bucketName).rule).toEqual([
      { apply_server_side_encryption_by_default: { sse_algorithm: "aws:kms", kms_master_key_id: keyArn }, bucket_key_enabled: true },
    ]);
    expect(configOf("aws_s3_bucket_versioning", bucketName).versioning_configuration).toEqual({ status: "Enabled" });
  });

  test("writes its access logs to the log bucket", () => {
    expect(configOf("aws_s3_bucket_logging", bucketName)).toMatchObject({
      target_bucket: ref("aws_s3_bucket", logBucketName, "id"),
    });
    // S3 delivers access logs only to an SSE-S3 bucket whose policy lets the logging service write.
    expect(configOf("aws_s3_bucket_server_side_encryption_configuration", logBucketName).rule).toEqual([
      { apply_server_side_encryption_by_default: { sse_algorithm: "AES256" } },
    ]);
    const policy = JSON.parse(configOf("aws_s3_bucket_policy", logBucketName).policy);
    expect(policy.Statement).toContainEqual(
      expect.objectContaining({ Effect: "Allow", Principal: { Service: "logging.s3.amazonaws.com" }, Action: "s3:PutObject" }),
    );
  });

  test.each(["results", "access log"])("the %s bucket refuses any request without TLS", (which) => {
    const name = which === "results" ? bucketName : logBucketName;
    const policy = JSON.parse(configOf("aws_s3_bucket_policy", name).policy);
    const arn = ref("aws_s3_bucket", name, "arn");
    expect(policy.Statement).toContainEqual({
      Sid: "TlsOnly",
      Effect: "Deny",
      Principal: "*",
      Action: "s3:*",
      Resource: [arn, `${arn}/*`],
      Condition: { Bool: { "aws:SecureTransport": "false" } },
    });
  });

  test("results expire after 30 days by default, and JOBS_RESULTS_EXPIRATION_DAYS changes it", () => {
    const expiry = (json: typeof app.json, name: string) =>
      theResource(json, "aws_s3_bucket_lifecycle_configuration", (b) => b.bucket === ref("aws_s3_bucket", name, "id"))[1]
        .rule[0];
    expect(expiry(app.json, bucketName)).toMatchObject({ status: "Enabled", expiration: [{ days: 30 }] });
    const other = synthStacks({ JOBS_RESULTS_EXPIRATION_DAYS: "7", JOBS_LAMBDA_ZIP_DIR: writeFixtureZips() }).app.json;
    const [otherBucket] = theResource(other, "aws_s3_bucket", (b) => /-results-/.test(b.bucket));
    expect(expiry(other, otherBucket).expiration).toEqual([{ days: 7 }]);
  });
});

describe("functions", () => {
  test("one Lambda function per contract function, all Rust on provided.al2023 with X-Ray", () => {
    expect(resourcesOf(app.json, "aws_lambda_function")).toHaveLength(CONTRACT_FUNCTIONS.length);
    for (const fn of CONTRACT_FUNCTIONS) {
      const [, lambda] = lambdaFor(app.json, fn);
      expect(lambda).toMatchObject({
        runtime: "provided.al2023",
        handler: "bootstrap",
        tracing_config: { mode: "Active" },
        architectures: ["arm64"],
      });
      expect(lambda.memory_size).toBeGreaterThanOrEqual(128);
      expect(lambda.memory_size).toBeLessThanOrEqual(256);
      expect(lambda.reserved_concurrent_executions).toBeGreaterThan(0);
    }
  });

  test.each([
    ["authorizer", 10],
    ["job-processor", 30],
    ["batch-simulator", 20],
    ["job-status", 10],
    ["webhook-sender", 30],
  ])("%s has a %i s timeout", (fn, timeout) => {
    expect(lambdaFor(app.json, fn)[1].timeout).toBe(timeout);
  });

  test("the job processor's configuration points at this stack's resources", () => {
    const [tableName] = jobsTable();
    const [simulatorName] = lambdaFor(app.json, "batch-simulator");
    expect(processor.environment.variables).toEqual({
      JOBS_TABLE_NAME: ref("aws_dynamodb_table", tableName, "name"),
      BATCH_SIMULATOR_FUNCTION_NAME: ref("aws_lambda_function", simulatorName, "function_name"),
      JOB_QUEUE_URL: ref("aws_sqs_queue", jobQueueName, "url"),
      MAX_RECEIVE_COUNT: "4",
      RETRY_BACKOFF_BASE_SECONDS: "2",
      RESULT_RETENTION_DAYS: "30",
      METRICS_NAMESPACE: "JobIngestion/dev",
      JOB_EVENTS_BUS_NAME: ref("aws_cloudwatch_event_bus", theResource(app.json, "aws_cloudwatch_event_bus")[0], "name"),
      RESULTS_BUCKET_NAME: ref("aws_s3_bucket", resultsBucket()[0], "bucket"),
      // It checks a job's callback URL when it records the job: public https only on AWS.
      WEBHOOK_DESTINATIONS: "public-https",
      RUST_LOG: "info",
    });
  });

  test("the simulator and status functions point at the bucket and table", () => {
    const [tableName] = jobsTable();
    const [bucketName] = resultsBucket();
    expect(lambdaFor(app.json, "batch-simulator")[1].environment.variables).toEqual({
      RESULTS_BUCKET_NAME: ref("aws_s3_bucket", bucketName, "bucket"),
      METRICS_NAMESPACE: "JobIngestion/dev",
      RUST_LOG: "info",
    });
    expect(lambdaFor(app.json, "job-status")[1].environment.variables).toEqual({
      JOBS_TABLE_NAME: ref("aws_dynamodb_table", tableName, "name"),
      PRESIGNED_URL_TTL_SECONDS: "1800",
      RESULT_LINK_ROLE_ARN: `arn:aws:iam::\${data.aws_caller_identity.current-account.account_id}:role/jobs-dev-result-links`,
      RESULTS_BUCKET_NAME: ref("aws_s3_bucket", bucketName, "bucket"),
      COUNTERS_TABLE_NAME: ref("aws_dynamodb_table", countersTable()[0], "name"),
      RUST_LOG: "info",
    });
  });

  test("the authorizer verifies tokens of the cognito stack's pool and client", () => {
    const env = lambdaFor(app.json, "authorizer")[1].environment.variables;
    const fromCognito = (output: string) =>
      `\${data.terraform_remote_state.cross-stack-reference-input-cognito.outputs.${output}}`;
    expect(env.COGNITO_ISSUER).toBe(
      `https://cognito-idp.us-east-1.amazonaws.com/${fromCognito("cross-stack-output-aws_cognito_user_poolusersid")}`,
    );
    expect(env.JWKS_URL).toBe(`${env.COGNITO_ISSUER}/.well-known/jwks.json`);
    expect(env.COGNITO_APP_CLIENT_ID).toBe(fromCognito("cross-stack-output-aws_cognito_user_pool_clientclientid"));
  });

  test("each function runs as its own role, assumable by Lambda only", () => {
    const roleNames = CONTRACT_FUNCTIONS.map((fn) => referencedName(lambdaFor(app.json, fn)[1].role, "aws_iam_role"));
    expect(new Set(roleNames).size).toBe(CONTRACT_FUNCTIONS.length);
    for (const roleName of roleNames) {
      const trust = JSON.parse(app.json.resource!.aws_iam_role[roleName].assume_role_policy);
      expect(trust.Statement).toEqual([
        { Effect: "Allow", Action: "sts:AssumeRole", Principal: { Service: "lambda.amazonaws.com" } },
      ]);
    }
  });
});

describe("least-privilege IAM", () => {
  /** Action → resources of the function's role, without the log and trace statements every function has. */
  function grantsOf(fn: string): Record<string, string[]> {
    const roleName = referencedName(lambdaFor(app.json, fn)[1].role, "aws_iam_role");
    const grants: Record<string, string[]> = {};
    for (const statement of statementsOfRole(app.json, roleName)) {
      for (const action of statement.Action) {
        if (action.startsWith("logs:") || action.startsWith("xray:")) continue;
        grants[action] = [...(grants[action] ?? []), ...statement.Resource].sort();
      }
    }
    return grants;
  }

  function allStatements(): { Action: string | string[]; Resource: string | string[] }[] {
    return resourcesOf(app.json, "aws_iam_role_policy").flatMap(([, p]) => JSON.parse(p.policy).Statement);
  }

  test("no statement anywhere has a wildcard action", () => {
    const actions = allStatements().flatMap((s) => [s.Action].flat());
    expect(actions.length).toBeGreaterThan(0);
    expect(actions.filter((a) => a.includes("*"))).toEqual([]);
  });

  test("a '*' resource appears only for X-Ray, which has no resource-level permissions", () => {
    for (const statement of allStatements()) {
      if ([statement.Resource].flat().includes("*")) {
        expect([statement.Action].flat().every((a) => a.startsWith("xray:"))).toBe(true);
      }
    }
  });

  test("every function writes only to its own log group", () => {
    for (const fn of CONTRACT_FUNCTIONS) {
      const [, lambda] = lambdaFor(app.json, fn);
      const [logGroupName] = theResource(
        app.json,
        "aws_cloudwatch_log_group",
        (group) => group.name === `/aws/lambda/${lambda.function_name}`,
      );
      const logStatements = statementsOfRole(app.json, referencedName(lambda.role, "aws_iam_role")).filter((s) =>
        s.Action.some((a) => a.startsWith("logs:")),
      );
      expect(logStatements).toEqual([
        {
          Effect: "Allow",
          Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
          Resource: [`${ref("aws_cloudwatch_log_group", logGroupName, "arn")}:*`],
        },
      ]);
      expect(lambda.depends_on).toContain(`aws_cloudwatch_log_group.${logGroupName}`);
    }
  });

  test("job processor: its table item, the simulator, the jobs queue, the job events bus, removing results", () => {
    const [tableName] = jobsTable();
    const [bucketName] = resultsBucket();
    const [simulatorName] = lambdaFor(app.json, "batch-simulator");
    const table = [ref("aws_dynamodb_table", tableName, "arn")];
    const queue = [ref("aws_sqs_queue", jobQueueName, "arn")];
    // Every job write is one conditional UpdateItem; the one read is the
    // bookkeeping delivery's (settling a job whose last attempt crashed).
    expect(grantsOf("job-processor")).toEqual({
      "dynamodb:UpdateItem": table,
      "dynamodb:GetItem": table,
      "lambda:InvokeFunction": [ref("aws_lambda_function", simulatorName, "arn")],
      "sqs:ReceiveMessage": queue,
      "sqs:DeleteMessage": queue,
      "sqs:GetQueueAttributes": queue,
      "sqs:ChangeMessageVisibility": queue,
      // Receiving from the encrypted queue.
      "kms:Decrypt": [keyArn],
      "events:PutEvents": [ref("aws_cloudwatch_event_bus", theResource(app.json, "aws_cloudwatch_event_bus")[0], "arn")],
      // A job cancelled while it ran keeps no result (no KMS needed to delete).
      "s3:DeleteObject": [`${ref("aws_s3_bucket", bucketName, "arn")}/results/*`],
    });
  });

  test("batch simulator: writes result objects only", () => {
    const [bucketName] = resultsBucket();
    expect(grantsOf("batch-simulator")).toEqual({
      "s3:PutObject": [`${ref("aws_s3_bucket", bucketName, "arn")}/results/*`],
      "kms:GenerateDataKey": [keyArn],
    });
  });

  test("job commands: one conditional write of the jobs table, its idempotency keys, sending to the jobs queue (and its key), the job events bus; nothing else", () => {
    const [tableName] = jobsTable();
    const [keysName] = idempotencyTable();
    const keys = ref("aws_dynamodb_table", keysName, "arn");
    expect(grantsOf("job-commands")).toEqual({
      "dynamodb:UpdateItem": [ref("aws_dynamodb_table", tableName, "arn"), keys].sort(),
      "dynamodb:PutItem": [keys],
      "dynamodb:DeleteItem": [keys],
      "sqs:SendMessage": [ref("aws_sqs_queue", jobQueueName, "arn")],
      // The queue is encrypted with the stack's key: SendMessage needs a data key.
      "kms:GenerateDataKey": [keyArn],
      "kms:Decrypt": [keyArn],
      "events:PutEvents": [ref("aws_cloudwatch_event_bus", theResource(app.json, "aws_cloudwatch_event_bus")[0], "arn")],
    });
    // The idempotency table's writes are on that table only, the jobs table's one UpdateItem on it only.
    const roleName = referencedName(lambdaFor(app.json, "job-commands")[1].role, "aws_iam_role");
    const dynamodb = statementsOfRole(app.json, roleName).filter((st) => st.Action.some((a) => a.startsWith("dynamodb:")));
    expect(dynamodb).toEqual([
      { Effect: "Allow", Action: ["dynamodb:UpdateItem"], Resource: [ref("aws_dynamodb_table", tableName, "arn")] },
      { Effect: "Allow", Action: ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"], Resource: [keys] },
    ]);
    // No wildcard resource (the log group's `:*` streams and X-Ray's `*` are every function's, checked above and below).
    for (const [action, resources] of Object.entries(grantsOf("job-commands"))) {
      for (const resource of resources) expect({ action, resource }).toEqual({ action, resource: expect.not.stringContaining("*") });
    }
    expect(lambdaFor(app.json, "job-commands")[1].environment.variables).toEqual({
      JOBS_TABLE_NAME: ref("aws_dynamodb_table", tableName, "name"),
      RESULT_RETENTION_DAYS: "30",
      JOB_EVENTS_BUS_NAME: ref("aws_cloudwatch_event_bus", theResource(app.json, "aws_cloudwatch_event_bus")[0], "name"),
      METRICS_NAMESPACE: "JobIngestion/dev",
      JOB_QUEUE_URL: ref("aws_sqs_queue", jobQueueName, "url"),
      MAX_MESSAGE_BYTES: String(jobQueue.max_message_size),
      IDEMPOTENCY_TABLE_NAME: ref("aws_dynamodb_table", keysName, "name"),
      // A submit's callback URL is checked as the processor checks it: public https only on AWS.
      WEBHOOK_DESTINATIONS: "public-https",
      RUST_LOG: "info",
    });
  });

  test("job commands serves every submit: it reserves as many executions as the stage's throttle admits at once", () => {
    // A throttled Lambda proxy function is a bare 500 from API Gateway
    // (https://docs.aws.amazon.com/lambda/latest/dg/services-apigateway-errors.html);
    // requests over the stage's burst get its retryable 429 before any function runs.
    const [, settings] = theResource(app.json, "aws_api_gateway_method_settings");
    expect(settings.settings.throttling_burst_limit).toBe(STAGE_THROTTLE.burstLimit);
    expect(lambdaFor(app.json, "job-commands")[1].reserved_concurrent_executions).toBe(settings.settings.throttling_burst_limit);
  });

  test("job status: reads the table, its owner index and the counters, and assumes the link role only", () => {
    const [tableName] = jobsTable();
    expect(grantsOf("job-status")).toEqual({
      "dynamodb:GetItem": [ref("aws_dynamodb_table", tableName, "arn")],
      "dynamodb:Query": [
        `${ref("aws_dynamodb_table", tableName, "arn")}/index/owner-submittedAt`,
        ref("aws_dynamodb_table", countersTable()[0], "arn"),
      ].sort(),
      "sts:AssumeRole": [lambdaFor(app.json, "job-status")[1].environment.variables.RESULT_LINK_ROLE_ARN],
    });
  });

  describe("the result link role", () => {
    let roleName: string;
    let role: Block;
    beforeAll(() => {
      [roleName, role] = theResource(app.json, "aws_iam_role", (r) => r.name === "jobs-dev-result-links");
    });

    test("is the role job-status's RESULT_LINK_ROLE_ARN names", () => {
      const arn = lambdaFor(app.json, "job-status")[1].environment.variables.RESULT_LINK_ROLE_ARN;
      expect(arn).toBe(`arn:aws:iam::\${data.aws_caller_identity.current-account.account_id}:role/${role.name}`);
    });

    test("may be assumed by job-status's role only", () => {
      const [statusRole] = theResource(app.json, "aws_iam_role", (r) => r.name === "jobs-dev-job-status");
      expect(JSON.parse(role.assume_role_policy).Statement).toEqual([
        { Effect: "Allow", Action: "sts:AssumeRole", Principal: { AWS: ref("aws_iam_role", statusRole, "arn") } },
      ]);
    });

    test("reads result objects (and their key) and nothing else", () => {
      const [bucketName] = resultsBucket();
      expect(statementsOfRole(app.json, roleName)).toEqual([
        { Effect: "Allow", Action: ["s3:GetObject"], Resource: [`${ref("aws_s3_bucket", bucketName, "arn")}/results/*`] },
        { Effect: "Allow", Action: ["kms:Decrypt"], Resource: [keyArn] },
      ]);
    });

    test("a whole link fits in one session, with the minute's margin the signer keeps", () => {
      // A chained session (from a Lambda function's) lasts at most an hour:
      // https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_terms-and-concepts.html#iam-term-role-chaining
      expect(role.max_session_duration).toBe(3600);
      const ttl = Number(lambdaFor(app.json, "job-status")[1].environment.variables.PRESIGNED_URL_TTL_SECONDS);
      expect(ttl + 60).toBeLessThanOrEqual(role.max_session_duration);
      expect(ttl).toBe(1800);
    });
  });

  test("webhook sender: its delivery queue, the signing secret, the key of both, and one write of the jobs table", () => {
    const [tableName] = jobsTable();
    const [queueName] = theResource(app.json, "aws_sqs_queue", (q) => q.name === "jobs-dev-webhooks");
    const [secretName] = theResource(app.json, "aws_secretsmanager_secret");
    const queue = [ref("aws_sqs_queue", queueName, "arn")];
    expect(grantsOf("webhook-sender")).toEqual({
      "sqs:ReceiveMessage": queue,
      "sqs:DeleteMessage": queue,
      "sqs:GetQueueAttributes": queue,
      // A failed attempt's back-off.
      "sqs:ChangeMessageVisibility": queue,
      "secretsmanager:GetSecretValue": [ref("aws_secretsmanager_secret", secretName, "arn")],
      // The queue's messages and the secret's value: both under the stack's key.
      "kms:Decrypt": [keyArn],
      // A refused callback URL is recorded on its job.
      "dynamodb:UpdateItem": [ref("aws_dynamodb_table", tableName, "arn")],
    });
  });

  test("authorizer: nothing but its logs and traces", () => {
    expect(grantsOf("authorizer")).toEqual({});
  });
});

test("the stack outputs what the tests and the CLI need", () => {
  expect(Object.keys(app.json.output ?? {}).sort()).toEqual(
    [
      "apiUrl",
      "machineApiUrl",
      "machineClientRoleArn",
      "deadLetterQueueUrl",
      "jobQueueUrl",
      "webhookQueueUrl",
      "webhookDeadLetterQueueUrl",
      "webhookSigningSecretName",
      "jobsTableName",
      "countersTableName",
      "idempotencyTableName",
      "objectEventsTopicArn",
      "eventBusName",
      "eventBusArn",
      "region",
      "resultsBucketName",
      "dashboardUrl",
      "alarmTopicArn",
      "userPoolId",
      "userPoolClientId",
      "tokenCommand",
    ].sort(),
  );
  const [stageName] = theResource(app.json, "aws_api_gateway_stage");
  expect(app.json.output!.apiUrl.value).toBe(ref("aws_api_gateway_stage", stageName, "invoke_url"));
  expect(app.json.output!.jobQueueUrl.value).toBe(ref("aws_sqs_queue", jobQueueName, "url"));
});
