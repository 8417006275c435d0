import { Construct } from "constructs";
import { CloudwatchEventBus } from "@cdktn/provider-aws/lib/cloudwatch-event-bus";

/** `Source` of every event job-processor puts on the bus. */
export const JOB_EVENT_SOURCE = "job-ingestion";

/** `DetailType` of the event of each terminal job state. */
export const JOB_EVENT_DETAIL_TYPES = { completed: "Job Completed", failed: "Job Failed" } as const;

/** The job events bus's name: `<prefix>-jobs`. */
export function jobEventBusName(prefix: string): string {
  return `${prefix}-jobs`;
}

/** The bus's ARN, known before the bus exists (the key policy names it, and the bus names the key). */
export function jobEventBusArn(region: string, accountId: string, prefix: string): string {
  return `arn:aws:events:${region}:${accountId}:event-bus/${jobEventBusName(prefix)}`;
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
 * The custom event bus on which job-processor publishes one event per job
 * that ends (`Job Completed` / `Job Failed`, source `job-ingestion`): other
 * systems subscribe with rules of their own. No archive and no rule here.
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
 * AWS recommends a dead-letter queue on a CMK-encrypted bus for events that
 * fail to be encrypted or decrypted on their way to targets; the bus has no
 * rule or target yet, so there is nothing to deliver: whoever adds a rule
 * adds the DLQ with it.
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
