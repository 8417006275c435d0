import { Construct } from "constructs";
import { DynamodbTable } from "@cdktn/provider-aws/lib/dynamodb-table";

export interface ObjectCounterTableProps {
  readonly name: string;
  /** Encrypted with the stack's customer-managed key, like the jobs table. */
  readonly kmsKeyArn: string;
  readonly deletionProtection: boolean;
}

/**
 * The results bucket's object counters (docs/contract.md, "Counters
 * table"): partition key `bucket`, sort key `counter` (`counter#<prefix>`
 * items, and the counter's own `object#<key>` state).
 */
export class ObjectCounterTable extends Construct {
  readonly table: DynamodbTable;

  constructor(scope: Construct, id: string, props: ObjectCounterTableProps) {
    super(scope, id);
    this.table = new DynamodbTable(this, "table", {
      name: props.name,
      billingMode: "PAY_PER_REQUEST",
      hashKey: "bucket",
      rangeKey: "counter",
      attribute: [
        { name: "bucket", type: "S" },
        { name: "counter", type: "S" },
      ],
      pointInTimeRecovery: { enabled: true },
      serverSideEncryption: { enabled: true, kmsKeyArn: props.kmsKeyArn },
      deletionProtectionEnabled: props.deletionProtection,
    });
  }
}
