import { Construct } from "constructs";
import { SqsQueue } from "@cdktn/provider-aws/lib/sqs-queue";
import { SqsQueueRedriveAllowPolicy } from "@cdktn/provider-aws/lib/sqs-queue-redrive-allow-policy";

/**
 * AWS's guidance for a queue read by a Lambda event source mapping: the
 * visibility timeout is at least six times the consumer's timeout, so a message
 * is not handed out again while a throttled or retried invocation still holds it.
 */
export const VISIBILITY_TIMEOUT_PER_CONSUMER_TIMEOUT = 6;

const DAY_SECONDS = 24 * 60 * 60;

/**
 * The jobs queue's maximum message size, in bytes, attributes included. SQS
 * allows up to 1 MiB since 2025 (its default for new queues); this stays at
 * 256 KiB because the body is stored in the job's DynamoDB record, whose
 * item limit is 400 KB
 * (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html).
 */
export const JOB_QUEUE_MAX_MESSAGE_BYTES = 256 * 1024;

// SQS reuses a data key this long (the maximum): fewer KMS calls per message.
const KMS_DATA_KEY_REUSE_SECONDS = 24 * 60 * 60;

export interface QueueWithDlqProps {
  /** The queue's name; the dead-letter queue is `<name>-dlq`. */
  readonly name: string;
  /** The consuming function's timeout. */
  readonly consumerTimeoutSeconds: number;
  /** The receive after which a message moves to the dead-letter queue. */
  readonly maxReceiveCount: number;
  /** Both queues are encrypted with this customer-managed key. */
  readonly kmsKeyArn: string;
}

/** A standard SQS queue whose failing messages end in its own dead-letter queue. */
export class QueueWithDlq extends Construct {
  readonly queue: SqsQueue;
  readonly deadLetterQueue: SqsQueue;
  /** The queue's maximum message size (bytes): SQS refuses larger messages. */
  readonly maxMessageBytes = JOB_QUEUE_MAX_MESSAGE_BYTES;

  constructor(scope: Construct, id: string, props: QueueWithDlqProps) {
    super(scope, id);

    // The DLQ keeps a message for the longest time SQS allows, so that a
    // failed job can still be inspected and replayed after a long weekend.
    this.deadLetterQueue = new SqsQueue(this, "dlq", {
      name: `${props.name}-dlq`,
      messageRetentionSeconds: 14 * DAY_SECONDS,
      kmsMasterKeyId: props.kmsKeyArn,
      kmsDataKeyReusePeriodSeconds: KMS_DATA_KEY_REUSE_SECONDS,
    });

    this.queue = new SqsQueue(this, "queue", {
      name: props.name,
      visibilityTimeoutSeconds: VISIBILITY_TIMEOUT_PER_CONSUMER_TIMEOUT * props.consumerTimeoutSeconds,
      messageRetentionSeconds: 4 * DAY_SECONDS,
      // job-commands gets it as MAX_MESSAGE_BYTES and answers a body over the
      // limit this leaves with 400 (maxJobRequestBytes in job-api.ts).
      maxMessageSize: this.maxMessageBytes,
      kmsMasterKeyId: props.kmsKeyArn,
      kmsDataKeyReusePeriodSeconds: KMS_DATA_KEY_REUSE_SECONDS,
      // A plain JSON string with a `${...}` reference inside (no Terraform
      // function): the local target evaluates only simple references.
      redrivePolicy: JSON.stringify({
        deadLetterTargetArn: this.deadLetterQueue.arn,
        maxReceiveCount: props.maxReceiveCount,
      }),
    });

    // Only this queue may move messages into the DLQ. A separate resource,
    // because setting it on the DLQ itself would make the two queues refer to
    // each other.
    new SqsQueueRedriveAllowPolicy(this, "dlq-redrive-allow", {
      queueUrl: this.deadLetterQueue.url,
      redriveAllowPolicy: JSON.stringify({
        redrivePermission: "byQueue",
        sourceQueueArns: [this.queue.arn],
      }),
    });
  }
}
