import { Construct } from "constructs";
import { KmsAlias } from "@cdktn/provider-aws/lib/kms-alias";
import { KmsKey as KmsKeyResource } from "@cdktn/provider-aws/lib/kms-key";

/**
 * What the account's IAM policies may be given on a key (the key policy's
 * `AccountIamPolicies` statement): administering it, spelled out (no
 * `kms:Describe*`-style wildcards; the project rule is no `*` in any action).
 * Terraform needs these to create, update, tag, rotate and schedule the
 * deletion of the key and its alias.
 */
export const KEY_ADMINISTRATION_ACTIONS = [
  "kms:CreateAlias",
  "kms:CreateGrant",
  "kms:DescribeKey",
  "kms:EnableKey",
  "kms:EnableKeyRotation",
  "kms:ListGrants",
  "kms:ListKeyPolicies",
  "kms:ListKeyRotations",
  "kms:ListResourceTags",
  "kms:PutKeyPolicy",
  "kms:UpdateAlias",
  "kms:UpdateKeyDescription",
  "kms:RevokeGrant",
  "kms:DisableKey",
  "kms:DisableKeyRotation",
  "kms:GetKeyPolicy",
  "kms:GetKeyRotationStatus",
  "kms:DeleteAlias",
  "kms:TagResource",
  "kms:UntagResource",
  "kms:ScheduleKeyDeletion",
  "kms:CancelKeyDeletion",
];

/**
 * ... and using it: every KMS action the stacks' IAM policies grant (the
 * tests check that none is missing, or the IAM grant would do nothing), plus
 * what a deployer and an operator need to create and read encrypted
 * resources (Lambda encrypts environment variables, SQS, SNS, S3 and
 * DynamoDB ask for data keys).
 */
export const KEY_USE_ACTIONS = [
  "kms:Encrypt",
  "kms:Decrypt",
  "kms:ReEncryptFrom",
  "kms:ReEncryptTo",
  "kms:GenerateDataKey",
  "kms:GenerateDataKeyWithoutPlaintext",
  "kms:DescribeKey",
];

/**
 * What CloudWatch Logs may do with a key that encrypts log groups: AWS's
 * documented key policy statement grants `kms:Encrypt*`, `kms:Decrypt*`,
 * `kms:ReEncrypt*`, `kms:GenerateDataKey*` and `kms:Describe*`
 * (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html),
 * and AWS does not document which of those calls CloudWatch Logs makes. So
 * this is exactly what the wildcards match on a key (the KMS actions of the
 * Service Authorization Reference,
 * https://docs.aws.amazon.com/service-authorization/latest/reference/list_awskeymanagementservice.html),
 * spelled out: nothing less, which could fail a log group's creation, and no
 * wildcard (the project's rule).
 */
export const CLOUDWATCH_LOGS_KEY_ACTIONS = [
  "kms:Encrypt",
  "kms:Decrypt",
  "kms:ReEncryptFrom",
  "kms:ReEncryptTo",
  "kms:GenerateDataKey",
  "kms:GenerateDataKeyPair",
  "kms:GenerateDataKeyPairWithoutPlaintext",
  "kms:GenerateDataKeyWithoutPlaintext",
  "kms:DescribeKey",
];

export interface KmsKeyProps {
  /** The alias, without `alias/`. */
  readonly alias: string;
  readonly description: string;
  readonly region: string;
  readonly accountId: string;
  /** Only `prod` keeps a deleted key recoverable for the longest window. */
  readonly deletionWindowDays: number;
  /**
   * Names (or name patterns ending in `*`) of the stack's log groups that
   * CloudWatch Logs encrypts with the key, e.g. `/aws/lambda/jobs-dev-*`.
   * None: CloudWatch Logs may not use the key.
   */
  readonly logGroupNames?: string[];
  /** Whether CloudWatch alarms publish to a topic encrypted with the key. */
  readonly alarmsPublish?: boolean;
  /**
   * AWS services that write to the stack's encrypted SNS topics or SQS queues
   * on their own (S3 event notifications, SNS redrive to a DLQ, an
   * EventBridge rule's SQS target): each may use
   * the key only from this account and from the listed source ARNs.
   */
  readonly servicePublishers?: ServicePublisher[];
  /**
   * ARNs of the EventBridge buses encrypted with the key: EventBridge may
   * describe the key (from this account) and make and open data keys for
   * these buses only.
   */
  readonly eventBuses?: string[];
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
 *
 * In a key policy `Resource: "*"` means "this key" (a key policy applies to
 * its own key only), so every statement below keeps it; what is limited is
 * the principal, the actions and the conditions.
 */
export class KmsKey extends Construct {
  readonly key: KmsKeyResource;

  constructor(scope: Construct, id: string, props: KmsKeyProps) {
    super(scope, id);
    const { region, accountId } = props;
    const logGroupArns = (props.logGroupNames ?? []).map((name) => `arn:aws:logs:${region}:${accountId}:log-group:${name}`);

    this.key = new KmsKeyResource(this, "key", {
      description: props.description,
      enableKeyRotation: true,
      deletionWindowInDays: props.deletionWindowDays,
      policy: JSON.stringify({
        Version: "2012-10-17",
        Statement: [
          {
            // The account's IAM policies decide who administers and uses the
            // key (without this statement the key is unmanageable). AWS's
            // default grants `kms:*`; this lists the actions instead.
            Sid: "AccountIamPolicies",
            Effect: "Allow",
            Principal: { AWS: `arn:aws:iam::${accountId}:root` },
            Action: [...new Set([...KEY_ADMINISTRATION_ACTIONS, ...KEY_USE_ACTIONS])],
            Resource: "*",
          },
          ...(logGroupArns.length
            ? [
                {
                  // CloudWatch Logs encrypts only this stack's log groups.
                  Sid: "CloudWatchLogs",
                  Effect: "Allow",
                  Principal: { Service: `logs.${region}.amazonaws.com` },
                  Action: CLOUDWATCH_LOGS_KEY_ACTIONS,
                  Resource: "*",
                  Condition: { ArnLike: { "kms:EncryptionContext:aws:logs:arn": logGroupArns } },
                },
              ]
            : []),
          ...(props.alarmsPublish
            ? [
                {
                  // Alarms publish to the encrypted SNS topic.
                  Sid: "CloudWatchAlarms",
                  Effect: "Allow",
                  Principal: { Service: "cloudwatch.amazonaws.com" },
                  Action: ["kms:Decrypt", "kms:GenerateDataKey"],
                  Resource: "*",
                  Condition: { StringEquals: { "aws:SourceAccount": accountId } },
                },
              ]
            : []),
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
          ...(props.eventBuses?.length
            ? [
                // EventBridge needs kms:DescribeKey (to check the key when a
                // bus is created or updated), kms:GenerateDataKey and
                // kms:Decrypt; AWS recommends an aws:SourceAccount, aws:SourceArn
                // or encryption-context condition:
                // https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-encryption-key-policy.html
                // DescribeKey carries no encryption context, so it is limited
                // to this account; the data keys to the buses' ARNs, the
                // encryption context of every cryptographic call EventBridge
                // makes for a bus
                // (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-encryption-event-bus-cmkey.html).
                {
                  Sid: "EventBridgeDescribeKey",
                  Effect: "Allow",
                  Principal: { Service: "events.amazonaws.com" },
                  Action: ["kms:DescribeKey"],
                  Resource: "*",
                  Condition: { StringEquals: { "aws:SourceAccount": accountId } },
                },
                {
                  Sid: "EventBridgeBuses",
                  Effect: "Allow",
                  Principal: { Service: "events.amazonaws.com" },
                  Action: ["kms:GenerateDataKey", "kms:Decrypt"],
                  Resource: "*",
                  // The bus ARN holds the account: no aws:SourceAccount needed.
                  Condition: { StringEquals: { "kms:EncryptionContext:aws:events:event-bus:arn": props.eventBuses } },
                },
              ]
            : []),
        ],
      }),
    });
    new KmsAlias(this, "alias", { name: `alias/${props.alias}`, targetKeyId: this.key.keyId });
  }

  get arn(): string {
    return this.key.arn;
  }
}
