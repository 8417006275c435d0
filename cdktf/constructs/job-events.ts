import { Construct } from "constructs";
import { CloudwatchEventBus } from "@cdktn/provider-aws/lib/cloudwatch-event-bus";

/** `Source` of every event job-processor puts on the bus. */
export const JOB_EVENT_SOURCE = "job-ingestion";

/**
 * `DetailType` of the event of each terminal job state: completed and failed
 * from job-processor, cancelled from job-commands.
 */
export const JOB_EVENT_DETAIL_TYPES = { completed: "Job Completed", failed: "Job Failed", cancelled: "Job Cancelled" } as const;

/** The job events bus's name: `<prefix>-jobs`. */
export function jobEventBusName(prefix: string): string {
  return `${prefix}-jobs`;
}

/** The bus's ARN, known before the bus exists (the key policy names it, and the bus names the key). */
export function jobEventBusArn(region: string, accountId: string, prefix: string): string {
  return `arn:aws:events:${region}:${accountId}:event-bus/${jobEventBusName(prefix)}`;
}

/**
 * The ARN of the rule `ruleName` on the bus, known before the rule exists (the
 * key policy names it): a rule on a custom bus is `rule/<bus>/<rule>`
 * (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoneventbridge.html#amazoneventbridge-resources-for-iam-policies).
 */
export function jobEventRuleArn(region: string, accountId: string, prefix: string, ruleName: string): string {
  return `arn:aws:events:${region}:${accountId}:rule/${jobEventBusName(prefix)}/${ruleName}`;
}

export interface JobEventsProps {
  readonly namePrefix: string;
  /**
   * The stack's customer-managed key. Its policy must let EventBridge use it
   * for this bus (`KmsKeyProps.eventBuses`), or the bus cannot be created.
   */
  readonly kmsKeyArn: string;
}

/**
 * The custom event bus on which job-processor and job-commands publish one
 * event per job that ends (`Job Completed` / `Job Failed` / `Job Cancelled`,
 * source `job-ingestion`): other systems subscribe with rules of their own.
 * No archive and no rule here (the webhook rule is in job-webhooks.ts).
 *
 * Encrypted with the stack's customer-managed key, like every other store of
 * job data in the stack (EventBridge's default is an AWS owned key). The key
 * policy gives events.amazonaws.com kms:DescribeKey, kms:GenerateDataKey and
 * kms:Decrypt, the three permissions AWS documents, with the conditions it
 * recommends (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-encryption-key-policy.html;
 * the encryption context is the bus ARN,
 * https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-encryption-event-bus-cmkey.html).
 * AWS documents no KMS permission for the PutEvents caller: EventBridge uses
 * the key itself, so job-processor gets events:PutEvents only.
 *
 * AWS recommends a dead-letter queue for events that fail to be encrypted or
 * decrypted on a CMK-encrypted bus
 * (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-encryption-event-bus-dlq.html):
 * each rule's target has its own (the webhook rule's is its delivery DLQ,
 * job-webhooks.ts). The bus itself has none: its non-retriable errors are
 * the key being disabled or missing, and every queue of the stack is
 * encrypted with that same key, so such a DLQ could not take them either.
 */
export class JobEvents extends Construct {
  readonly bus: CloudwatchEventBus;

  constructor(scope: Construct, id: string, props: JobEventsProps) {
    super(scope, id);
    this.bus = new CloudwatchEventBus(this, "bus", {
      name: jobEventBusName(props.namePrefix),
      description: `Terminal states of the jobs of ${props.namePrefix} (source ${JOB_EVENT_SOURCE})`,
      kmsKeyIdentifier: props.kmsKeyArn,
    });
  }

  get name(): string {
    return this.bus.name;
  }

  get arn(): string {
    return this.bus.arn;
  }
}
