import { Construct } from "constructs";
import { DynamodbTable } from "@cdktn/provider-aws/lib/dynamodb-table";
import { LambdaFunctionEventInvokeConfig } from "@cdktn/provider-aws/lib/lambda-function-event-invoke-config";
import { LambdaPermission } from "@cdktn/provider-aws/lib/lambda-permission";
import { S3Bucket } from "@cdktn/provider-aws/lib/s3-bucket";
import { S3BucketNotification } from "@cdktn/provider-aws/lib/s3-bucket-notification";
import { SnsTopic } from "@cdktn/provider-aws/lib/sns-topic";
import { SnsTopicPolicy } from "@cdktn/provider-aws/lib/sns-topic-policy";
import { SnsTopicSubscription } from "@cdktn/provider-aws/lib/sns-topic-subscription";
import { SqsQueue } from "@cdktn/provider-aws/lib/sqs-queue";
import { SqsQueuePolicy } from "@cdktn/provider-aws/lib/sqs-queue-policy";
import { Config } from "../config";
import { RustFunction } from "./rust-function";

/**
 * The S3 events the counter consumes. S3 sends its lifecycle deletions only
 * as `s3:LifecycleExpiration:*`, never as `s3:ObjectRemoved:*`
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/lifecycle-configure-notification.html):
 * without them an expired result would stay counted forever. The counter
 * counts `LifecycleExpiration:DeleteMarkerCreated` (the current object
 * expired) as a removal and not `LifecycleExpiration:Delete` (a noncurrent
 * version deleted; functions/jobs-core/src/counters/object_event.rs).
 */
export const COUNTED_EVENTS = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*", "s3:LifecycleExpiration:*"];

/** Lambda retries a failed asynchronous invocation this often before the DLQ (its maximum). */
export const ASYNC_RETRY_ATTEMPTS = 2;

/** Names the stack must also know before the resources exist (the key policy is created first). */
export function objectEventsTopicName(namePrefix: string): string {
  return `${namePrefix}-results-events`;
}

export interface ObjectCounterProps {
  readonly config: Config;
  readonly namePrefix: string;
  readonly accountId: string;
  readonly kmsKeyArn: string;
  /** The bucket whose objects are counted. */
  readonly bucket: S3Bucket;
  /** The counters table (`ObjectCounterTable`). */
  readonly table: DynamodbTable;
}

/**
 * Results bucket → SNS topic → object-counter function → counters table.
 * S3 publishes object-created/removed and lifecycle-expiration events to an
 * encrypted topic that only
 * this bucket may publish to; the topic invokes the function asynchronously;
 * an invocation that still fails after Lambda's retries, and a message SNS
 * cannot deliver, end in one encrypted dead-letter queue.
 */
export class ObjectCounter extends Construct {
  readonly topic: SnsTopic;
  readonly counter: RustFunction;
  readonly deadLetterQueue: SqsQueue;

  constructor(scope: Construct, id: string, props: ObjectCounterProps) {
    super(scope, id);
    const { namePrefix: prefix, kmsKeyArn, bucket, table, accountId } = props;

    this.topic = new SnsTopic(this, "topic", {
      name: objectEventsTopicName(prefix),
      kmsMasterKeyId: kmsKeyArn,
    });
    const topicPolicy = new SnsTopicPolicy(this, "topic-policy", {
      arn: this.topic.arn,
      policy: JSON.stringify({
        Version: "2012-10-17",
        Statement: [
          {
            Sid: "ResultsBucketEvents",
            Effect: "Allow",
            Principal: { Service: "s3.amazonaws.com" },
            Action: "sns:Publish",
            Resource: this.topic.arn,
            Condition: {
              StringEquals: { "aws:SourceAccount": accountId },
              ArnLike: { "aws:SourceArn": bucket.arn },
            },
          },
        ],
      }),
    });

    // Failed asynchronous invocations (after Lambda's retries) and messages
    // SNS could not deliver to the function: kept 14 days, alarmed on.
    this.deadLetterQueue = new SqsQueue(this, "dlq", {
      name: `${prefix}-object-counter-dlq`,
      messageRetentionSeconds: 14 * 24 * 3600,
      kmsMasterKeyId: kmsKeyArn,
      kmsDataKeyReusePeriodSeconds: 24 * 3600,
    });
    new SqsQueuePolicy(this, "dlq-policy", {
      queueUrl: this.deadLetterQueue.url,
      policy: JSON.stringify({
        Version: "2012-10-17",
        Statement: [
          {
            Sid: "UndeliverableObjectEvents",
            Effect: "Allow",
            Principal: { Service: "sns.amazonaws.com" },
            Action: "sqs:SendMessage",
            Resource: this.deadLetterQueue.arn,
            Condition: { ArnEquals: { "aws:SourceArn": this.topic.arn } },
          },
        ],
      }),
    });

    this.counter = new RustFunction(this, "object-counter", {
      config: props.config,
      namePrefix: prefix,
      name: "object-counter",
      timeoutSeconds: 30,
      memorySizeMb: 128,
      // Events of one key are serialized by the table's conditional writes;
      // a few instances keep transaction conflicts on the counter items rare.
      reservedConcurrency: 5,
      kmsKeyArn,
      environment: { COUNTERS_TABLE_NAME: table.name },
      deadLetterQueueArn: this.deadLetterQueue.arn,
      permissions: [
        // GetItem reads an object's state; each event is one TransactWriteItems
        // of a Put (the object's state) and Updates (the counters).
        { actions: ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"], resources: [table.arn] },
        // Lambda sends failed invocations to the encrypted DLQ with this role.
        { actions: ["sqs:SendMessage"], resources: [this.deadLetterQueue.arn] },
        { actions: ["kms:GenerateDataKey", "kms:Decrypt"], resources: [kmsKeyArn] },
      ],
    });
    const fn = this.counter.function;

    new LambdaFunctionEventInvokeConfig(this, "async", {
      functionName: fn.functionName,
      maximumRetryAttempts: ASYNC_RETRY_ATTEMPTS,
      // Lambda's maximum: a throttled event waits up to 6 hours for its turn.
      maximumEventAgeInSeconds: 6 * 3600,
    });

    const permission = new LambdaPermission(this, "invoke-from-topic", {
      statementId: "ResultsEventsTopic",
      action: "lambda:InvokeFunction",
      functionName: fn.functionName,
      principal: "sns.amazonaws.com",
      sourceArn: this.topic.arn,
    });
    new SnsTopicSubscription(this, "subscription", {
      topicArn: this.topic.arn,
      protocol: "lambda",
      endpoint: fn.arn,
      redrivePolicy: JSON.stringify({ deadLetterTargetArn: this.deadLetterQueue.arn }),
      dependsOn: [permission],
    });

    // S3 checks that it may publish when the configuration is saved.
    new S3BucketNotification(this, "bucket-notification", {
      bucket: bucket.id,
      topic: [{ id: "object-counter", topicArn: this.topic.arn, events: COUNTED_EVENTS }],
      dependsOn: [topicPolicy],
    });
  }
}
