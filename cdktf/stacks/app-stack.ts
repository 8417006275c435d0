import { TerraformOutput, TerraformStack } from "cdktn";
import { Construct } from "constructs";
import { DataAwsCallerIdentity } from "@cdktn/provider-aws/lib/data-aws-caller-identity";
import { DataAwsRegion } from "@cdktn/provider-aws/lib/data-aws-region";
import { DynamodbTable } from "@cdktn/provider-aws/lib/dynamodb-table";
import { LambdaEventSourceMapping } from "@cdktn/provider-aws/lib/lambda-event-source-mapping";
import { AwsProvider } from "@cdktn/provider-aws/lib/provider";
import { Config } from "../config";
import { ApiRateLimits, wafLogGroupName } from "../constructs/api-rate-limits";
import { IdempotencyTable } from "../constructs/idempotency-table";
import {
  accessLogGroupName,
  ALLOWED_ROUTES,
  JobApi,
  MACHINE_PATH_PREFIX,
  STAGE_NAME,
  STAGE_THROTTLE,
  TOKEN_LEEWAY_SECONDS,
} from "../constructs/job-api";
import { JobEvents, jobEventBusArn } from "../constructs/job-events";
import { JobWebhooks, WEBHOOK_DESTINATIONS, webhookRuleArn } from "../constructs/job-webhooks";
import { KmsKey } from "../constructs/kms-key";
import { ObjectCounterTable } from "../constructs/object-counter-table";
import { Observability } from "../constructs/observability";
import { ObjectCounter, objectEventsTopicName } from "../constructs/object-counter";
import { QueueWithDlq } from "../constructs/queue-with-dlq";
import { RESULT_LINK_TTL_SECONDS, ResultLinkRole, resultLinkRoleName } from "../constructs/result-link-role";
import { lambdaLogGroupName, RustFunction } from "../constructs/rust-function";
import { SecureBucket } from "../constructs/secure-bucket";
import { configureBackend } from "./backend";

/**
 * The queue's redrive maxReceiveCount, also given to the processor
 * (MAX_RECEIVE_COUNT): receives 1-3 run the job, and a job whose third
 * attempt fails is marked `failed`; the fourth receive is kept to mark
 * `failed` a job whose last attempt did not finish (crash, timeout) before the
 * message moves to the DLQ.
 */
export const MAX_RECEIVE_COUNT = 4;

const PROCESSOR_TIMEOUT_SECONDS = 30;

/** The jobs table's attribute holding the submitter's Cognito `sub` (docs/contract.md). */
export const OWNER_ATTRIBUTE = "owner";
/** The jobs table's global secondary index listing a user's jobs: hash `owner`, range `submittedAt`. */
export const OWNER_INDEX = "owner-submittedAt";
/** The jobs table's TTL attribute (epoch seconds). */
export const EXPIRES_AT_ATTRIBUTE = "expiresAt";

export interface AppStackProps {
  readonly config: Config;
  /** The Cognito issuer (`iss` of ID tokens), from the cognito stack. */
  readonly cognitoIssuer: string;
  /** The app client id (`aud` of ID tokens), from the cognito stack. */
  readonly userPoolClientId: string;
  /** The user pool id, from the cognito stack (an output for the CLI). */
  readonly userPoolId: string;
  /** This stack's region: one app stack per configured region. */
  readonly region: string;
  /**
   * The prefix of this stack's resource names: `jobs-<stage>` in the primary
   * region, `jobs-<stage>-<region>` elsewhere (IAM and S3 names are global).
   */
  readonly namePrefix: string;
}

/** The job service: API, queue, processing functions, table and results bucket. */
export class AppStack extends TerraformStack {
  constructor(scope: Construct, id: string, props: AppStackProps) {
    super(scope, id);
    const { config } = props;
    const prefix = props.namePrefix;
    configureBackend(this, config, id);

    new AwsProvider(this, "aws", {
      region: props.region,
      defaultTags: [{ tags: { project: "jobs", stage: config.stage } }],
    });
    const region = new DataAwsRegion(this, "current-region");
    const account = new DataAwsCallerIdentity(this, "current-account");

    // Known before the bucket and topic exist: the key's policy names them.
    const resultsBucketName = `${prefix}-results-${account.accountId}`;
    const objectEventsTopicArn = `arn:aws:sns:${region.region}:${account.accountId}:${objectEventsTopicName(prefix)}`;
    const apiName = `${prefix}-api`;
    const key = new KmsKey(this, "key", {
      alias: prefix,
      description: `Encrypts the job ingestion service's data (${prefix})`,
      region: region.region,
      accountId: account.accountId,
      deletionWindowDays: config.deletionProtection ? 30 : 7,
      // The functions' log groups, the API's access log group and its WAF log group, no others.
      logGroupNames: [lambdaLogGroupName(`${prefix}-*`), accessLogGroupName(apiName), wafLogGroupName(apiName)],
      alarmsPublish: true,
      servicePublishers: [
        // The results bucket publishes object events to the encrypted topic.
        { sid: "S3ObjectEvents", service: "s3.amazonaws.com", sourceArns: [`arn:aws:s3:::${resultsBucketName}`] },
        // The topic moves undeliverable events to the encrypted counter DLQ.
        { sid: "SnsRedrive", service: "sns.amazonaws.com", sourceArns: [objectEventsTopicArn] },
        // The webhook rule sends job events to the encrypted delivery queue
        // (and what fails to its DLQ): EventBridge needs kms:GenerateDataKey
        // and kms:Decrypt on the queue's key
        // (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-troubleshooting.html#eb-sqs-encrypted),
        // here for that one rule.
        {
          sid: "EventBridgeWebhookRule",
          service: "events.amazonaws.com",
          sourceArns: [webhookRuleArn(region.region, account.accountId, prefix)],
        },
      ],
      // EventBridge encrypts the job events bus with the key.
      eventBuses: [jobEventBusArn(region.region, account.accountId, prefix)],
    });
    const kmsKeyArn = key.arn;
    // SQS, S3 and Lambda decrypt with the caller's permission on the key.
    const useKey = (...actions: string[]) => ({ actions, resources: [kmsKeyArn] });

    const jobQueue = new QueueWithDlq(this, "job-queue", {
      name: `${prefix}-job-queue`,
      consumerTimeoutSeconds: PROCESSOR_TIMEOUT_SECONDS,
      maxReceiveCount: MAX_RECEIVE_COUNT,
      kmsKeyArn,
    });

    const table = new DynamodbTable(this, "jobs-table", {
      name: `${prefix}-jobs`,
      billingMode: "PAY_PER_REQUEST",
      hashKey: "jobRequestId",
      attribute: [
        { name: "jobRequestId", type: "S" },
        { name: OWNER_ATTRIBUTE, type: "S" },
        { name: "submittedAt", type: "S" },
      ],
      // GET /jobs: a user's jobs, newest first. Sparse: jobs without an owner are not in it.
      globalSecondaryIndex: [
        { name: OWNER_INDEX, hashKey: OWNER_ATTRIBUTE, rangeKey: "submittedAt", projectionType: "ALL" },
      ],
      // Finished jobs go with their result: the processor sets expiresAt
      // (epoch seconds) from the same retention period as the bucket's rule.
      ttl: { enabled: true, attributeName: EXPIRES_AT_ATTRIBUTE },
      pointInTimeRecovery: { enabled: true },
      serverSideEncryption: { enabled: true, kmsKeyArn },
      deletionProtectionEnabled: config.deletionProtection,
    });

    // S3 server access logs of the results bucket, kept at least 30 days (longer if results are).
    const accessLogs = new SecureBucket(this, "access-logs", {
      bucketName: `${prefix}-logs-${account.accountId}`,
      expirationDays: Math.max(config.resultsExpirationDays, 30),
      receivesAccessLogsFrom: account.accountId,
    });
    // Results are reproducible job output: the bucket is destroyed with the
    // stack, objects included, and objects expire after a configurable time.
    const resultsBucket = new SecureBucket(this, "results", {
      bucketName: resultsBucketName,
      publishesEvents: true,
      kmsKeyArn,
      accessLogs: { bucket: accessLogs, prefix: "results/" },
      expirationDays: config.resultsExpirationDays,
    });
    const results = resultsBucket.bucket;
    const resultObjects = `${results.arn}/results/*`;

    // The results bucket's object counts: written by the object counter,
    // read by job-status for GET /count.
    const counters = new ObjectCounterTable(this, "counters", {
      name: `${prefix}-counters`,
      kmsKeyArn,
      deletionProtection: config.deletionProtection,
    });

    // The submits' Idempotency-Keys, claimed by job-commands; kept 24 hours (TTL).
    const idempotency = new IdempotencyTable(this, "idempotency", {
      name: `${prefix}-idempotency-keys`,
      kmsKeyArn,
      deletionProtection: config.deletionProtection,
    });

    const metrics = config.metricsNamespace;

    // job-processor publishes every job that ends (completed or failed) here.
    const jobEvents = new JobEvents(this, "job-events", { namePrefix: prefix, kmsKeyArn });

    const authorizer = new RustFunction(this, "authorizer", {
      config,
      namePrefix: prefix,
      name: "authorizer",
      timeoutSeconds: 10,
      memorySizeMb: 128,
      reservedConcurrency: 20,
      kmsKeyArn,
      environment: {
        COGNITO_ISSUER: props.cognitoIssuer,
        COGNITO_APP_CLIENT_ID: props.userPoolClientId,
        JWKS_URL: `${props.cognitoIssuer}/.well-known/jwks.json`,
        ALLOWED_ROUTES,
        // Part of the bound on how long an expired token works (job-api.ts).
        JWT_LEEWAY_SECONDS: String(TOKEN_LEEWAY_SECONDS),
      },
    });

    const simulator = new RustFunction(this, "batch-simulator", {
      config,
      namePrefix: prefix,
      name: "batch-simulator",
      timeoutSeconds: 20,
      memorySizeMb: 256,
      reservedConcurrency: 20,
      kmsKeyArn,
      environment: { RESULTS_BUCKET_NAME: results.bucket, METRICS_NAMESPACE: metrics },
      permissions: [
        { actions: ["s3:PutObject"], resources: [resultObjects] },
        // SSE-KMS: a new object needs a data key.
        useKey("kms:GenerateDataKey"),
      ],
    });

    const processor = new RustFunction(this, "job-processor", {
      config,
      namePrefix: prefix,
      name: "job-processor",
      timeoutSeconds: PROCESSOR_TIMEOUT_SECONDS,
      memorySizeMb: 256,
      reservedConcurrency: 10,
      kmsKeyArn,
      environment: {
        JOBS_TABLE_NAME: table.name,
        BATCH_SIMULATOR_FUNCTION_NAME: simulator.function.functionName,
        JOB_QUEUE_URL: jobQueue.queue.url,
        MAX_RECEIVE_COUNT: String(MAX_RECEIVE_COUNT),
        RETRY_BACKOFF_BASE_SECONDS: "2",
        // The same period as the results bucket's expiration rule.
        RESULT_RETENTION_DAYS: String(config.resultsExpirationDays),
        METRICS_NAMESPACE: metrics,
        JOB_EVENTS_BUS_NAME: jobEvents.name,
        RESULTS_BUCKET_NAME: results.bucket,
        // It checks a job's callback URL when it records the job (job-webhooks.ts).
        WEBHOOK_DESTINATIONS,
      },
      permissions: [
        // UpdateItem: every job write is one conditional update. GetItem: the
        // bookkeeping delivery after the last attempt reads the job to settle it.
        { actions: ["dynamodb:UpdateItem", "dynamodb:GetItem"], resources: [table.arn] },
        { actions: ["lambda:InvokeFunction"], resources: [simulator.function.arn] },
        {
          actions: [
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ChangeMessageVisibility",
          ],
          resources: [jobQueue.queue.arn],
        },
        // A job cancelled while it ran keeps no result: the processor
        // removes it (versioned bucket: a delete marker; the noncurrent
        // version goes with the lifecycle rule).
        { actions: ["s3:DeleteObject"], resources: [resultObjects] },
        // Messages of the encrypted queue are decrypted on receive.
        useKey("kms:Decrypt"),
        // One event per job that ends, on the job events bus only. No KMS
        // permission: EventBridge itself uses the bus's key (job-events.ts).
        { actions: ["events:PutEvents"], resources: [jobEvents.arn] },
      ],
    });

    // Result links are signed with sessions of their own role (expiry known), not job-status's credentials.
    const resultLinkRoleArn = `arn:aws:iam::${account.accountId}:role/${resultLinkRoleName(prefix)}`;
    const jobStatus = new RustFunction(this, "job-status", {
      config,
      namePrefix: prefix,
      name: "job-status",
      timeoutSeconds: 10,
      memorySizeMb: 128,
      reservedConcurrency: 20,
      kmsKeyArn,
      environment: {
        JOBS_TABLE_NAME: table.name,
        PRESIGNED_URL_TTL_SECONDS: String(RESULT_LINK_TTL_SECONDS),
        RESULT_LINK_ROLE_ARN: resultLinkRoleArn,
        RESULTS_BUCKET_NAME: results.bucket,
        COUNTERS_TABLE_NAME: counters.table.name,
      },
      permissions: [
        { actions: ["dynamodb:GetItem"], resources: [table.arn] },
        // GET /jobs queries the owner index only; GET /count the counters table.
        { actions: ["dynamodb:Query"], resources: [`${table.arn}/index/${OWNER_INDEX}`, counters.table.arn] },
        // The result links are signed with sessions of the link role, which may read results.
        { actions: ["sts:AssumeRole"], resources: [resultLinkRoleArn] },
      ],
    });
    // The API's commands: submit (record the job, claim its optional
    // Idempotency-Key, send its message to the jobs queue, answer) and cancel
    // (one conditional write, and the event of a job that ended so). Every
    // submit goes through it, and API Gateway answers a throttled Lambda
    // proxy function with a bare 500 "Internal server error"
    // (https://docs.aws.amazon.com/lambda/latest/dg/services-apigateway-errors.html):
    // it reserves as many executions as the stage's throttle lets requests
    // through at once (its burst, job-api.ts), so a burst the API admits
    // never meets a Lambda throttle; past the burst, clients get the
    // throttle's retryable 429.
    const jobCommands = new RustFunction(this, "job-commands", {
      config,
      namePrefix: prefix,
      name: "job-commands",
      timeoutSeconds: 10,
      memorySizeMb: 128,
      reservedConcurrency: STAGE_THROTTLE.burstLimit,
      kmsKeyArn,
      environment: {
        JOBS_TABLE_NAME: table.name,
        // A cancelled job's record is kept as long as an ended one's.
        RESULT_RETENTION_DAYS: String(config.resultsExpirationDays),
        JOB_EVENTS_BUS_NAME: jobEvents.name,
        METRICS_NAMESPACE: metrics,
        // Where a submitted job's message goes.
        JOB_QUEUE_URL: jobQueue.queue.url,
        // The queue's maximum message size: with the message's attributes it
        // bounds the request body (maxJobRequestBytes in job-api.ts).
        MAX_MESSAGE_BYTES: String(jobQueue.maxMessageBytes),
        IDEMPOTENCY_TABLE_NAME: idempotency.table.name,
        // A submit's callback URL is checked as the processor checks it
        // (job-webhooks.ts): a refused one is answered 400.
        WEBHOOK_DESTINATIONS,
      },
      permissions: [
        // A submit records the job with one conditional UpdateItem; cancel is
        // one too (owner, status and expiry in its condition).
        { actions: ["dynamodb:UpdateItem"], resources: [table.arn] },
        // Claim an Idempotency-Key (conditional put), mark it accepted once
        // the message is sent, release it when the send fails.
        {
          actions: ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
          resources: [idempotency.table.arn],
        },
        // The job's message, to the jobs queue only.
        { actions: ["sqs:SendMessage"], resources: [jobQueue.queue.arn] },
        // The queue is encrypted with the stack's key: SendMessage needs a data key.
        useKey("kms:GenerateDataKey", "kms:Decrypt"),
        // "Job Cancelled", on the job events bus only.
        { actions: ["events:PutEvents"], resources: [jobEvents.arn] },
      ],
    });

    new ResultLinkRole(this, "result-link-role", {
      namePrefix: prefix,
      signerRoleArn: jobStatus.role.arn,
      resultObjects,
      kmsKeyArn,
    });

    new LambdaEventSourceMapping(this, "job-processor-trigger", {
      eventSourceArn: jobQueue.queue.arn,
      functionName: processor.function.functionName,
      batchSize: 10,
      maximumBatchingWindowInSeconds: 1,
      // The processor reports the failed messages of a batch; only those return to the queue.
      functionResponseTypes: ["ReportBatchItemFailures"],
      // Stays below the processor's reserved concurrency (when reservations
      // are on), so that SQS deliveries are not throttled (a throttled
      // delivery still counts as a receive); with them off it is the
      // processor's only bound.
      scalingConfig: { maximumConcurrency: 5 },
    });

    const objectCounter = new ObjectCounter(this, "results-object-counter", {
      config,
      namePrefix: prefix,
      accountId: account.accountId,
      kmsKeyArn,
      bucket: results,
      table: counters.table,
    });

    // Completion webhooks: ended jobs with a callback URL, from the bus to webhook-sender.
    const webhooks = new JobWebhooks(this, "webhooks", {
      config,
      namePrefix: prefix,
      kmsKeyArn,
      jobEvents,
      table,
      metricsNamespace: metrics,
    });

    const api = new JobApi(this, "api", {
      name: apiName,
      authorizerFunction: authorizer.function,
      jobStatusFunction: jobStatus.function,
      jobCommandsFunction: jobCommands.function,
      accountId: account.accountId,
      kmsKeyArn,
    });

    // Per-client limits, so that one caller cannot starve the others.
    new ApiRateLimits(this, "api-rate-limits", { name: apiName, stageArn: api.stage.arn, kmsKeyArn });

    const observability = new Observability(this, "observability", {
      namePrefix: prefix,
      region: region.region,
      accountId: account.accountId,
      kmsKeyArn,
      metricsNamespace: metrics,
      functionNames: Object.fromEntries(
        [authorizer, processor, simulator, jobStatus, jobCommands, objectCounter.counter, webhooks.sender].map((f) => [
          f.node.id,
          f.function.functionName,
        ]),
      ),
      otherDeadLetterQueues: { "object-counter": objectCounter.deadLetterQueue.name },
      queueName: jobQueue.queue.name,
      deadLetterQueueName: jobQueue.deadLetterQueue.name,
      webhooks: { queueName: webhooks.queue.queue.name, deadLetterQueueName: webhooks.queue.deadLetterQueue.name },
      tableName: table.name,
      otherTables: { counters: counters.table.name, idempotency: idempotency.table.name },
      apiName: api.api.name,
      apiStageName: STAGE_NAME,
    });

    new TerraformOutput(this, "apiUrl", { value: api.stage.invokeUrl });
    // Machine clients (docs/api.md, "Machine clients"): sign requests to these routes with a session of the role.
    new TerraformOutput(this, "machineApiUrl", { value: `${api.stage.invokeUrl}/${MACHINE_PATH_PREFIX}` });
    new TerraformOutput(this, "machineClientRoleArn", { value: api.machineClientRole.role.arn });
    new TerraformOutput(this, "jobQueueUrl", { value: jobQueue.queue.url });
    new TerraformOutput(this, "deadLetterQueueUrl", { value: jobQueue.deadLetterQueue.url });
    new TerraformOutput(this, "webhookQueueUrl", { value: webhooks.queue.queue.url });
    new TerraformOutput(this, "webhookDeadLetterQueueUrl", { value: webhooks.queue.deadLetterQueue.url });
    // Receivers verify deliveries with its value (read it with GetSecretValue; it is in no state).
    new TerraformOutput(this, "webhookSigningSecretName", { value: webhooks.secret.name });
    new TerraformOutput(this, "jobsTableName", { value: table.name });
    new TerraformOutput(this, "resultsBucketName", { value: results.bucket });
    new TerraformOutput(this, "countersTableName", { value: counters.table.name });
    new TerraformOutput(this, "idempotencyTableName", { value: idempotency.table.name });
    new TerraformOutput(this, "objectEventsTopicArn", { value: objectCounter.topic.arn });
    new TerraformOutput(this, "eventBusName", { value: jobEvents.name });
    new TerraformOutput(this, "eventBusArn", { value: jobEvents.arn });
    new TerraformOutput(this, "region", { value: region.region });
    new TerraformOutput(this, "dashboardUrl", { value: observability.dashboardUrl(region.region) });
    new TerraformOutput(this, "alarmTopicArn", { value: observability.alarmTopic.arn });
    new TerraformOutput(this, "userPoolId", { value: props.userPoolId });
    new TerraformOutput(this, "userPoolClientId", { value: props.userPoolClientId });
    new TerraformOutput(this, "tokenCommand", {
      description: "Prints an ID token for a user of the pool (set USERNAME and PASSWORD first)",
      value:
        `aws cognito-idp initiate-auth --region ${region.region} --auth-flow USER_PASSWORD_AUTH ` +
        `--client-id ${props.userPoolClientId} --auth-parameters "USERNAME=$USERNAME,PASSWORD=$PASSWORD" ` +
        "--query AuthenticationResult.IdToken --output text",
    });
  }
}
