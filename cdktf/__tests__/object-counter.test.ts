// The results bucket's object counter: bucket notification → encrypted SNS
// topic → object-counter function → counters table, with a DLQ for what
// cannot be delivered or processed, and least privilege throughout.
import { DynamodbTable } from "@cdktn/provider-aws/lib/dynamodb-table";
import { LambdaFunctionEventInvokeConfig } from "@cdktn/provider-aws/lib/lambda-function-event-invoke-config";
import { LambdaPermission } from "@cdktn/provider-aws/lib/lambda-permission";
import { S3BucketNotification } from "@cdktn/provider-aws/lib/s3-bucket-notification";
import { SnsTopic } from "@cdktn/provider-aws/lib/sns-topic";
import { SnsTopicSubscription } from "@cdktn/provider-aws/lib/sns-topic-subscription";
import { SqsQueue } from "@cdktn/provider-aws/lib/sqs-queue";
import {
  Block,
  lambdaFor,
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
let keyName: string;
let keyArn: string;
let topicName: string;
let topicArn: string;
let bucketName: string;
let counterName: string;
let counter: Block;
let dlqName: string;
let tableName: string;

beforeAll(() => {
  app = synthStacks({ JOBS_LAMBDA_ZIP_DIR: writeFixtureZips() }).app;
  [keyName] = theResource(app.json, "aws_kms_key");
  keyArn = ref("aws_kms_key", keyName, "arn");
  [topicName] = theResource(app.json, "aws_sns_topic", (t) => t.name === "jobs-dev-results-events");
  topicArn = ref("aws_sns_topic", topicName, "arn");
  [bucketName] = theResource(app.json, "aws_s3_bucket", (b) => /^jobs-dev-results-/.test(b.bucket));
  [counterName, counter] = lambdaFor(app.json, "object-counter");
  [dlqName] = theResource(app.json, "aws_sqs_queue", (q) => q.name === "jobs-dev-object-counter-dlq");
  [tableName] = theResource(app.json, "aws_dynamodb_table", (t) => t.hash_key === "bucket");
});

describe("counters table", () => {
  test("has the agreed keys, point-in-time recovery and the stack's key", () => {
    expect(app.text).toHaveResourceWithProperties(DynamodbTable, {
      name: "jobs-dev-counters",
      billing_mode: "PAY_PER_REQUEST",
      hash_key: "bucket",
      range_key: "counter",
      attribute: [
        { name: "bucket", type: "S" },
        { name: "counter", type: "S" },
      ],
      point_in_time_recovery: { enabled: true },
      server_side_encryption: { enabled: true, kms_key_arn: keyArn },
    });
  });

  test("the counter gets its name as COUNTERS_TABLE_NAME, and the stack outputs it", () => {
    expect(counter.environment.variables.COUNTERS_TABLE_NAME).toBe(ref("aws_dynamodb_table", tableName, "name"));
    expect(app.json.output!.countersTableName.value).toBe(ref("aws_dynamodb_table", tableName, "name"));
    expect(app.json.output!.objectEventsTopicArn.value).toBe(topicArn);
  });
});

describe("events topic", () => {
  test("is encrypted with the stack's key", () => {
    expect(app.text).toHaveResourceWithProperties(SnsTopic, { name: "jobs-dev-results-events", kms_master_key_id: keyArn });
  });

  test("only the results bucket of this account may publish to it", () => {
    const [, policy] = theResource(app.json, "aws_sns_topic_policy", (p) => p.arn === topicArn);
    expect(JSON.parse(policy.policy).Statement).toEqual([
      {
        Sid: "ResultsBucketEvents",
        Effect: "Allow",
        Principal: { Service: "s3.amazonaws.com" },
        Action: "sns:Publish",
        Resource: topicArn,
        Condition: {
          StringEquals: { "aws:SourceAccount": "${data.aws_caller_identity.current-account.account_id}" },
          ArnLike: { "aws:SourceArn": ref("aws_s3_bucket", bucketName, "arn") },
        },
      },
    ]);
  });

  test("the key lets S3 (for the results bucket) and SNS (for the topic) use it, in this account only", () => {
    const statements = JSON.parse(app.json.resource!.aws_kms_key[keyName].policy).Statement;
    const account = { "aws:SourceAccount": "${data.aws_caller_identity.current-account.account_id}" };
    expect(statements).toEqual(
      expect.arrayContaining([
        {
          Sid: "S3ObjectEvents",
          Effect: "Allow",
          Principal: { Service: "s3.amazonaws.com" },
          Action: ["kms:GenerateDataKey", "kms:Decrypt"],
          Resource: "*",
          Condition: {
            StringEquals: account,
            ArnLike: {
              "aws:SourceArn": ["arn:aws:s3:::jobs-dev-results-${data.aws_caller_identity.current-account.account_id}"],
            },
          },
        },
        {
          Sid: "SnsRedrive",
          Effect: "Allow",
          Principal: { Service: "sns.amazonaws.com" },
          Action: ["kms:GenerateDataKey", "kms:Decrypt"],
          Resource: "*",
          Condition: {
            StringEquals: account,
            ArnLike: {
              "aws:SourceArn": [
                "arn:aws:sns:${data.aws_region.current-region.region}:${data.aws_caller_identity.current-account.account_id}:jobs-dev-results-events",
              ],
            },
          },
        },
      ]),
    );
    // The ARNs the key names are the bucket's and the topic's.
    expect(app.json.resource!.aws_s3_bucket[bucketName].bucket).toBe(
      "jobs-dev-results-${data.aws_caller_identity.current-account.account_id}",
    );
  });

  test("the results bucket sends every object-created, object-removed and lifecycle-expiration event to it, once the policy allows it", () => {
    // Lifecycle deletions arrive only as s3:LifecycleExpiration:* (not ObjectRemoved):
    // https://docs.aws.amazon.com/AmazonS3/latest/userguide/lifecycle-configure-notification.html
    expect(app.text).toHaveResourceWithProperties(S3BucketNotification, {
      bucket: ref("aws_s3_bucket", bucketName, "id"),
      topic: [
        {
          id: "object-counter",
          topic_arn: topicArn,
          events: ["s3:ObjectCreated:*", "s3:ObjectRemoved:*", "s3:LifecycleExpiration:*"],
        },
      ],
    });
    const [, notification] = theResource(app.json, "aws_s3_bucket_notification");
    const [policyName] = theResource(app.json, "aws_sns_topic_policy", (p) => p.arn === topicArn);
    expect(notification.depends_on).toContain(`aws_sns_topic_policy.${policyName}`);
  });

  test("the bucket is versioned, as the counter assumes: its expiration rule adds delete markers, and deleted versions are not current objects", () => {
    const [, versioning] = theResource(app.json, "aws_s3_bucket_versioning", (v) => v.bucket === ref("aws_s3_bucket", bucketName, "id"));
    expect(versioning.versioning_configuration).toEqual({ status: "Enabled" });
    const [, lifecycle] = theResource(app.json, "aws_s3_bucket_lifecycle_configuration", (l) => l.bucket === ref("aws_s3_bucket", bucketName, "id"));
    expect(lifecycle.rule[0].expiration).toEqual([{ days: 30 }]);
    expect(lifecycle.rule[0].noncurrent_version_expiration).toHaveLength(1);
  });
});

describe("object-counter function", () => {
  test("is subscribed to the topic, which alone may invoke it", () => {
    expect(app.text).toHaveResourceWithProperties(SnsTopicSubscription, {
      topic_arn: topicArn,
      protocol: "lambda",
      endpoint: ref("aws_lambda_function", counterName, "arn"),
    });
    expect(app.text).toHaveResourceWithProperties(LambdaPermission, {
      action: "lambda:InvokeFunction",
      function_name: ref("aws_lambda_function", counterName, "function_name"),
      principal: "sns.amazonaws.com",
      source_arn: topicArn,
    });
    const permissions = resourcesOf(app.json, "aws_lambda_permission").filter(
      ([, p]) => p.function_name === ref("aws_lambda_function", counterName, "function_name"),
    );
    expect(permissions).toHaveLength(1);
  });

  test("nothing is silently lost: failed invocations and undeliverable messages end in an encrypted DLQ", () => {
    const dlqArn = ref("aws_sqs_queue", dlqName, "arn");
    expect(counter.dead_letter_config).toEqual({ target_arn: dlqArn });
    expect(app.text).toHaveResourceWithProperties(LambdaFunctionEventInvokeConfig, {
      function_name: ref("aws_lambda_function", counterName, "function_name"),
      maximum_retry_attempts: 2,
      maximum_event_age_in_seconds: 21600,
    });
    const [, subscription] = theResource(app.json, "aws_sns_topic_subscription", (s) => s.protocol === "lambda");
    expect(JSON.parse(subscription.redrive_policy)).toEqual({ deadLetterTargetArn: dlqArn });
    expect(app.text).toHaveResourceWithProperties(SqsQueue, {
      name: "jobs-dev-object-counter-dlq",
      kms_master_key_id: keyArn,
      message_retention_seconds: 14 * 24 * 3600,
    });
    // SNS may send to the DLQ only for this topic.
    const [, queuePolicy] = theResource(
      app.json,
      "aws_sqs_queue_policy",
      (p) => p.queue_url === ref("aws_sqs_queue", dlqName, "url"),
    );
    expect(JSON.parse(queuePolicy.policy).Statement).toEqual([
      {
        Sid: "UndeliverableObjectEvents",
        Effect: "Allow",
        Principal: { Service: "sns.amazonaws.com" },
        Action: "sqs:SendMessage",
        Resource: dlqArn,
        Condition: { ArnEquals: { "aws:SourceArn": topicArn } },
      },
    ]);
  });

  test("may read and write the counters table, send to its DLQ and use the key, nothing else", () => {
    const roleName = referencedName(counter.role, "aws_iam_role");
    const grants: Record<string, string[]> = {};
    for (const statement of statementsOfRole(app.json, roleName)) {
      for (const action of statement.Action) {
        if (action.startsWith("logs:") || action.startsWith("xray:")) continue;
        grants[action] = [...(grants[action] ?? []), ...statement.Resource];
      }
    }
    const table = [ref("aws_dynamodb_table", tableName, "arn")];
    expect(grants).toEqual({
      "dynamodb:GetItem": table,
      "dynamodb:PutItem": table,
      "dynamodb:UpdateItem": table,
      "sqs:SendMessage": [ref("aws_sqs_queue", dlqName, "arn")],
      "kms:GenerateDataKey": [keyArn],
      "kms:Decrypt": [keyArn],
    });
  });

  test("has reserved concurrency, and alarms on its errors, throttles and DLQ", () => {
    expect(counter.reserved_concurrent_executions).toBe(5);
    const alarms = resourcesOf(app.json, "aws_cloudwatch_metric_alarm").map(([, a]) => a);
    const fnName = ref("aws_lambda_function", counterName, "function_name");
    for (const metric of ["Errors", "Throttles"]) {
      expect(alarms.filter((a) => a.metric_name === metric && a.dimensions.FunctionName === fnName)).toHaveLength(1);
    }
    expect(alarms).toContainEqual(
      expect.objectContaining({
        metric_name: "ApproximateNumberOfMessagesVisible",
        dimensions: { QueueName: ref("aws_sqs_queue", dlqName, "name") },
        threshold: 0,
      }),
    );
  });
});
