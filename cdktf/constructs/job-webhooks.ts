import { Construct } from "constructs";
import { CloudwatchEventRule } from "@cdktn/provider-aws/lib/cloudwatch-event-rule";
import { CloudwatchEventTarget } from "@cdktn/provider-aws/lib/cloudwatch-event-target";
import { DynamodbTable } from "@cdktn/provider-aws/lib/dynamodb-table";
import { EphemeralAwsSecretsmanagerRandomPassword } from "@cdktn/provider-aws/lib/ephemeral-aws-secretsmanager-random-password";
import { LambdaEventSourceMapping } from "@cdktn/provider-aws/lib/lambda-event-source-mapping";
import { SecretsmanagerSecret } from "@cdktn/provider-aws/lib/secretsmanager-secret";
import { SecretsmanagerSecretVersion } from "@cdktn/provider-aws/lib/secretsmanager-secret-version";
import { SqsQueue } from "@cdktn/provider-aws/lib/sqs-queue";
import { SqsQueuePolicy } from "@cdktn/provider-aws/lib/sqs-queue-policy";
import { Config } from "../config";
import { skipCheck } from "./checkov";
import { JOB_EVENT_DETAIL_TYPES, JOB_EVENT_SOURCE, jobEventRuleArn, JobEvents } from "./job-events";
import { QueueWithDlq } from "./queue-with-dlq";
import { RustFunction } from "./rust-function";

/** The first retry's delay, in seconds: each later one doubles, up to the cap. */
export const WEBHOOK_BACKOFF_BASE_SECONDS = 10;
/** The longest delay between two attempts of one delivery, in seconds. */
export const WEBHOOK_BACKOFF_CAP_SECONDS = 3600;
/** How long a receiver may be down and still get every webhook: the attempts span at least this. */
export const WEBHOOK_RETRY_WINDOW_SECONDS = 24 * 60 * 60;

/**
 * The delays between the attempts of one delivery, in seconds: after attempt
 * n (1..attempts-1) min(base * 2^(n-1), cap). The last attempt has none.
 */
export function webhookRetrySchedule(baseSeconds: number, capSeconds: number, attempts: number): number[] {
  return Array.from({ length: Math.max(attempts - 1, 0) }, (_, i) => Math.min(baseSeconds * 2 ** i, capSeconds));
}

/** The fewest attempts whose delays add up to at least `windowSeconds`. */
function attemptsCovering(baseSeconds: number, capSeconds: number, windowSeconds: number): number {
  let attempts = 1;
  const total = () => webhookRetrySchedule(baseSeconds, capSeconds, attempts).reduce((a, b) => a + b, 0);
  while (total() < windowSeconds) attempts++;
  return attempts;
}

/**
 * The attempts of one delivery (33): the fewest whose back-off spans 24
 * hours. Also the delivery queue's maxReceiveCount: every receive is one
 * attempt, and a message whose last attempt failed moves to the DLQ.
 */
export const WEBHOOK_MAX_ATTEMPTS = attemptsCovering(
  WEBHOOK_BACKOFF_BASE_SECONDS,
  WEBHOOK_BACKOFF_CAP_SECONDS,
  WEBHOOK_RETRY_WINDOW_SECONDS,
);

/**
 * Where callbacks may go (WEBHOOK_DESTINATIONS of webhook-sender and
 * job-processor): on AWS only `https` to public addresses
 * (functions/jobs-core/src/webhook.rs).
 */
export const WEBHOOK_DESTINATIONS = "public-https";

const SENDER_TIMEOUT_SECONDS = 30;

/**
 * webhook-sender's reserved concurrency, also its SQS mapping's maximum
 * concurrency: the mapping never starts more instances than the reservation
 * holds, so no delivery is throttled (a throttled batch counts as a receive,
 * and each receive is one of the WEBHOOK_MAX_ATTEMPTS;
 * https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html).
 */
export const WEBHOOK_SENDER_CONCURRENCY = 5;

/**
 * The secret's value version: raising it writes a new random value (the
 * value is write-only, never in the state: only a new version sends it).
 * Rotating it breaks every receiver's verification until they get the new
 * value, so it is a deliberate step, not a schedule.
 */
export const WEBHOOK_SIGNING_SECRET_VERSION = 1;

/** The HMAC key's length, in characters (letters and digits: about 380 bits). */
const SIGNING_SECRET_LENGTH = 64;

/** The rule that sends job events with a callback URL to the delivery queue: `<prefix>-webhooks`. */
export function webhookRuleName(prefix: string): string {
  return `${prefix}-webhooks`;
}

/** The rule's ARN, known before the rule exists (the key policy names it; the rule's bus names the key). */
export function webhookRuleArn(region: string, accountId: string, prefix: string): string {
  return jobEventRuleArn(region, accountId, prefix, webhookRuleName(prefix));
}

/** The signing secret's name: `<prefix>-webhook-signing`. */
export function webhookSigningSecretName(prefix: string): string {
  return `${prefix}-webhook-signing`;
}

/**
 * The jobs a webhook is sent for: every terminal state's event that carries
 * a callback URL (`detail.callbackUrl`, set by job-processor and job-commands
 * from the submit's `Job-Callback-Url`).
 */
export const WEBHOOK_EVENT_PATTERN = {
  source: [JOB_EVENT_SOURCE],
  "detail-type": [JOB_EVENT_DETAIL_TYPES.completed, JOB_EVENT_DETAIL_TYPES.failed, JOB_EVENT_DETAIL_TYPES.cancelled],
  detail: { callbackUrl: [{ exists: true }] },
};

export interface JobWebhooksProps {
  readonly config: Config;
  readonly namePrefix: string;
  /**
   * The stack's key: queues, secret, logs. Its policy must let EventBridge
   * send for the rule (`KmsKeyProps.servicePublishers` with webhookRuleArn).
   */
  readonly kmsKeyArn: string;
  /** The job events bus the rule listens on. */
  readonly jobEvents: JobEvents;
  /** The jobs table: webhook-sender records there why a webhook was refused. */
  readonly table: DynamodbTable;
  readonly metricsNamespace: string;
}

/**
 * Completion webhooks: job events bus → rule (events with a callback URL) →
 * delivery queue → webhook-sender → POST to the URL, signed with HMAC under
 * the signing secret. A delivery that fails is retried by the queue with the
 * sender's back-off (it sets the message's visibility) for at least 24 hours;
 * one whose every attempt failed ends in the delivery DLQ, alarmed.
 */
export class JobWebhooks extends Construct {
  readonly queue: QueueWithDlq;
  readonly rule: CloudwatchEventRule;
  readonly secret: SecretsmanagerSecret;
  readonly sender: RustFunction;

  constructor(scope: Construct, id: string, props: JobWebhooksProps) {
    super(scope, id);
    const { namePrefix: prefix, kmsKeyArn, jobEvents, table } = props;

    // Visibility timeout: six times the sender's timeout (queue-with-dlq.ts,
    // AWS's rule for an SQS event source:
    // https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html).
    // Retention (4 days) outlasts the whole back-off schedule.
    this.queue = new QueueWithDlq(this, "queue", {
      name: `${prefix}-webhooks`,
      consumerTimeoutSeconds: SENDER_TIMEOUT_SECONDS,
      maxReceiveCount: WEBHOOK_MAX_ATTEMPTS,
      kmsKeyArn,
    });
    const { queue, deadLetterQueue } = this.queue;

    this.rule = new CloudwatchEventRule(this, "rule", {
      name: webhookRuleName(prefix),
      description: `Ended jobs of ${prefix} that carry a callback URL, to their webhook delivery queue`,
      eventBusName: jobEvents.name,
      eventPattern: JSON.stringify(WEBHOOK_EVENT_PATTERN),
    });
    // The whole event is the message (no input transformer): webhook-sender
    // posts its `detail`, and a message redriven from the DLQ has the same shape.
    new CloudwatchEventTarget(this, "target", {
      rule: this.rule.name,
      eventBusName: jobEvents.name,
      targetId: "webhook-delivery-queue",
      arn: queue.arn,
      // EventBridge's maxima (and defaults): 24 hours and 185 tries for an
      // event the queue does not take (https://docs.aws.amazon.com/eventbridge/latest/userguide/rule-dlq.html).
      retryPolicy: { maximumEventAgeInSeconds: 24 * 60 * 60, maximumRetryAttempts: 185 },
      // What still fails goes to the delivery DLQ rather than a queue of its
      // own: it is already alarmed and kept 14 days, and its messages are
      // whole events like the queue's, so one redrive replays both kinds. A
      // separate DLQ would be encrypted with the same key (every queue of the
      // stack is), so it would not take more of the key's failures either.
      deadLetterConfig: { arn: deadLetterQueue.arn },
    });
    // EventBridge may send to the two queues for this rule only.
    for (const [name, target] of [
      ["queue-policy", queue],
      ["dlq-policy", deadLetterQueue],
    ] as [string, SqsQueue][]) {
      new SqsQueuePolicy(this, name, {
        queueUrl: target.url,
        policy: JSON.stringify({
          Version: "2012-10-17",
          Statement: [
            {
              Sid: "WebhookRule",
              Effect: "Allow",
              Principal: { Service: "events.amazonaws.com" },
              Action: "sqs:SendMessage",
              Resource: target.arn,
              Condition: { ArnEquals: { "aws:SourceArn": this.rule.arn } },
            },
          ],
        }),
      });
    }

    this.secret = new SecretsmanagerSecret(this, "signing-secret", {
      name: webhookSigningSecretName(prefix),
      description: `HMAC key that signs the completion webhooks of ${prefix} (receivers verify with it)`,
      kmsKeyId: kmsKeyArn,
      // A secret scheduled for deletion keeps its name: a non-prod stage
      // destroyed and deployed again could not create it. Prod keeps the
      // longest recovery window.
      recoveryWindowInDays: props.config.deletionProtection ? 30 : 0,
    });
    skipCheck(
      this.secret,
      "CKV2_AWS_57",
      "a rotated HMAC key breaks every receiver's verification until they get it: rotation is a deliberate new version (WEBHOOK_SIGNING_SECRET_VERSION)",
    );
    // The value is made by Secrets Manager during the apply and written
    // write-only: it is in neither the plan nor the state. The ephemeral
    // password is read on every plan, but only a new secret_string_wo_version
    // sends a value, so it is set once and kept.
    const password = new EphemeralAwsSecretsmanagerRandomPassword(this, "signing-secret-value", {
      passwordLength: SIGNING_SECRET_LENGTH,
      // Letters and digits only: pasted as is into a receiver's configuration.
      excludePunctuation: true,
      includeSpace: false,
    });
    new SecretsmanagerSecretVersion(this, "signing-secret-version", {
      secretId: this.secret.id,
      secretStringWo: password.randomPassword,
      secretStringWoVersion: WEBHOOK_SIGNING_SECRET_VERSION,
    });

    this.sender = new RustFunction(this, "webhook-sender", {
      config: props.config,
      namePrefix: prefix,
      name: "webhook-sender",
      timeoutSeconds: SENDER_TIMEOUT_SECONDS,
      memorySizeMb: 128,
      reservedConcurrency: WEBHOOK_SENDER_CONCURRENCY,
      kmsKeyArn,
      environment: {
        WEBHOOK_QUEUE_URL: queue.url,
        WEBHOOK_SIGNING_SECRET_ID: this.secret.arn,
        JOBS_TABLE_NAME: table.name,
        WEBHOOK_DESTINATIONS,
        WEBHOOK_BACKOFF_BASE_SECONDS: String(WEBHOOK_BACKOFF_BASE_SECONDS),
        WEBHOOK_BACKOFF_CAP_SECONDS: String(WEBHOOK_BACKOFF_CAP_SECONDS),
        WEBHOOK_MAX_ATTEMPTS: String(WEBHOOK_MAX_ATTEMPTS),
        METRICS_NAMESPACE: props.metricsNamespace,
      },
      permissions: [
        // ChangeMessageVisibility: a failed attempt's back-off.
        {
          actions: [
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ChangeMessageVisibility",
          ],
          resources: [queue.arn],
        },
        { actions: ["secretsmanager:GetSecretValue"], resources: [this.secret.arn] },
        // The queue's messages and the secret's value are both encrypted with the stack's key.
        { actions: ["kms:Decrypt"], resources: [kmsKeyArn] },
        // A refused callback URL is recorded on its job: one conditional UpdateItem.
        { actions: ["dynamodb:UpdateItem"], resources: [table.arn] },
      ],
    });

    new LambdaEventSourceMapping(this, "webhook-sender-trigger", {
      eventSourceArn: queue.arn,
      functionName: this.sender.function.functionName,
      batchSize: 10,
      maximumBatchingWindowInSeconds: 1,
      // The sender reports the failed messages of a batch; only those return to the queue.
      functionResponseTypes: ["ReportBatchItemFailures"],
      scalingConfig: { maximumConcurrency: WEBHOOK_SENDER_CONCURRENCY },
    });
  }
}
