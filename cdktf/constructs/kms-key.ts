import { Construct } from "constructs";
import { KmsAlias } from "@cdktn/provider-aws/lib/kms-alias";
import { KmsKey as KmsKeyResource } from "@cdktn/provider-aws/lib/kms-key";

export interface KmsKeyProps {
  /** The alias, without `alias/`. */
  readonly alias: string;
  readonly description: string;
  readonly region: string;
  readonly accountId: string;
  /** Only `prod` keeps a deleted key recoverable for the longest window. */
  readonly deletionWindowDays: number;
  /**
   * AWS services that write to the stack's encrypted SNS topics or SQS queues
   * on their own (S3 event notifications, SNS redrive to a DLQ): each may use
   * the key only from this account and from the listed source ARNs.
   */
  readonly servicePublishers?: ServicePublisher[];
}

export interface ServicePublisher {
  /** The statement id, e.g. `S3EventNotifications`. */
  readonly sid: string;
  /** The service principal, e.g. `s3.amazonaws.com`. */
  readonly service: string;
  /** `aws:SourceArn` values (ARN patterns) the service acts for. */
  readonly sourceArns: string[];
}

/**
 * The stack's customer-managed key: queues, table, logs, alarm topic and
 * results are encrypted with it, so access to the data also needs access to
 * the key, and every use is in CloudTrail.
 */
export class KmsKey extends Construct {
  readonly key: KmsKeyResource;

  constructor(scope: Construct, id: string, props: KmsKeyProps) {
    super(scope, id);
    const { region, accountId } = props;
    const useKey = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey", "kms:DescribeKey"];

    this.key = new KmsKeyResource(this, "key", {
      description: props.description,
      enableKeyRotation: true,
      deletionWindowInDays: props.deletionWindowDays,
      policy: JSON.stringify({
        Version: "2012-10-17",
        Statement: [
          {
            // AWS's default statement: the account's IAM policies decide who
            // administers and uses the key (without it the key is unmanageable).
            Sid: "AccountIamPolicies",
            Effect: "Allow",
            Principal: { AWS: `arn:aws:iam::${accountId}:root` },
            Action: "kms:*",
            Resource: "*",
          },
          {
            // CloudWatch Logs encrypts only this account's log groups in this region.
            Sid: "CloudWatchLogs",
            Effect: "Allow",
            Principal: { Service: `logs.${region}.amazonaws.com` },
            Action: useKey,
            Resource: "*",
            Condition: {
              ArnLike: { "kms:EncryptionContext:aws:logs:arn": `arn:aws:logs:${region}:${accountId}:log-group:*` },
            },
          },
          {
            // Alarms publish to the encrypted SNS topic.
            Sid: "CloudWatchAlarms",
            Effect: "Allow",
            Principal: { Service: "cloudwatch.amazonaws.com" },
            Action: ["kms:Decrypt", "kms:GenerateDataKey"],
            Resource: "*",
            Condition: { StringEquals: { "aws:SourceAccount": accountId } },
          },
          ...(props.servicePublishers ?? []).map((p) => ({
            Sid: p.sid,
            Effect: "Allow",
            Principal: { Service: p.service },
            // What a publisher to an SSE-KMS topic or queue needs.
            Action: ["kms:GenerateDataKey", "kms:Decrypt"],
            Resource: "*",
            Condition: {
              StringEquals: { "aws:SourceAccount": accountId },
              ArnLike: { "aws:SourceArn": p.sourceArns },
            },
          })),
        ],
      }),
    });
    new KmsAlias(this, "alias", { name: `alias/${props.alias}`, targetKeyId: this.key.keyId });
  }

  get arn(): string {
    return this.key.arn;
  }
}
