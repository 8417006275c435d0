import { Construct } from "constructs";
import { DynamodbTable } from "@cdktn/provider-aws/lib/dynamodb-table";

/** The table's partition key: `<owner>#<Idempotency-Key>`, so that two callers' keys never meet. */
export const IDEMPOTENCY_KEY_ATTRIBUTE = "idempotencyKey";

/** The table's TTL attribute (epoch seconds): job-commands sets it to the claim's time + IDEMPOTENCY_KEY_TTL_SECONDS. */
export const IDEMPOTENCY_EXPIRES_AT_ATTRIBUTE = "expiresAt";

/** How long a claimed key is remembered: a retry within it gets the first submit's job, not a new one. */
export const IDEMPOTENCY_KEY_TTL_SECONDS = 24 * 60 * 60;

export interface IdempotencyTableProps {
  readonly name: string;
  /** Encrypted with the stack's customer-managed key, like the jobs table. */
  readonly kmsKeyArn: string;
  readonly deletionProtection: boolean;
}

/**
 * The submits' idempotency keys (issue 17): one item per `Idempotency-Key` a
 * caller sent, written by job-commands: `idempotencyKey`
 * (`<owner>#<key>`), `jobId`, `requestHash` (a retry with another body is
 * refused), `expiresAt` (N, epoch seconds; DynamoDB's TTL removes the item
 * after it) and `accepted` (BOOL: the job's message was sent). Partition key
 * only: a key is claimed with one conditional write.
 */
export class IdempotencyTable extends Construct {
  readonly table: DynamodbTable;

  constructor(scope: Construct, id: string, props: IdempotencyTableProps) {
    super(scope, id);
    this.table = new DynamodbTable(this, "table", {
      name: props.name,
      billingMode: "PAY_PER_REQUEST",
      hashKey: IDEMPOTENCY_KEY_ATTRIBUTE,
      attribute: [{ name: IDEMPOTENCY_KEY_ATTRIBUTE, type: "S" }],
      // TTL deletion is eventual (typically within a few days of expiry): an
      // item can still be read for a while after its expiresAt.
      ttl: { enabled: true, attributeName: IDEMPOTENCY_EXPIRES_AT_ATTRIBUTE },
      pointInTimeRecovery: { enabled: true },
      serverSideEncryption: { enabled: true, kmsKeyArn: props.kmsKeyArn },
      deletionProtectionEnabled: props.deletionProtection,
    });
  }
}
