import { Construct } from "constructs";
import { S3Bucket } from "@cdktn/provider-aws/lib/s3-bucket";
import { S3BucketLifecycleConfiguration } from "@cdktn/provider-aws/lib/s3-bucket-lifecycle-configuration";
import { S3BucketLoggingA } from "@cdktn/provider-aws/lib/s3-bucket-logging";
import { S3BucketOwnershipControls } from "@cdktn/provider-aws/lib/s3-bucket-ownership-controls";
import { S3BucketPolicy } from "@cdktn/provider-aws/lib/s3-bucket-policy";
import { S3BucketPublicAccessBlock } from "@cdktn/provider-aws/lib/s3-bucket-public-access-block";
import { S3BucketServerSideEncryptionConfigurationA } from "@cdktn/provider-aws/lib/s3-bucket-server-side-encryption-configuration";
import { S3BucketVersioningA } from "@cdktn/provider-aws/lib/s3-bucket-versioning";
import { skipCheck } from "./checkov";

export interface SecureBucketProps {
  readonly bucketName: string;
  /**
   * SSE-KMS with this key. Without one, SSE-S3: S3 server access logs can
   * only be delivered to a bucket encrypted with SSE-S3.
   */
  readonly kmsKeyArn?: string;
  /** Where S3 writes this bucket's access logs (a `SecureBucket` made with `receivesAccessLogs`). */
  readonly accessLogs?: { bucket: SecureBucket; prefix: string };
  /**
   * Current objects expire after this many days; without it they never do
   * (e.g. Terraform state). Replaced versions are removed after
   * `noncurrentVersionDays` either way.
   */
  readonly expirationDays?: number;
  /** Default 1: a replaced result or log is not worth keeping. */
  readonly noncurrentVersionDays?: number;
  /** Default true: emptied and removed with its stack. */
  readonly forceDestroy?: boolean;
  /** The account whose buckets may deliver access logs here; makes this a log bucket. */
  readonly receivesAccessLogsFrom?: string;
  /** Set when the stack configures event notifications on the bucket (an `aws_s3_bucket_notification`). */
  readonly publishesEvents?: boolean;
}

/**
 * An S3 bucket with the baseline every bucket here needs: no public access,
 * bucket-owner objects, versioning, encryption, TLS-only access, lifecycle
 * expiry and (except for the log bucket itself) access logging. Destroyed
 * with its stack, objects included.
 */
export class SecureBucket extends Construct {
  readonly bucket: S3Bucket;

  constructor(scope: Construct, id: string, props: SecureBucketProps) {
    super(scope, id);

    this.bucket = new S3Bucket(this, "bucket", {
      bucket: props.bucketName,
      forceDestroy: props.forceDestroy ?? true,
    });
    const bucketId = this.bucket.id;
    // Data here is reproducible or short-lived; a copy in a second region is not worth its cost.
    skipCheck(this.bucket, "CKV_AWS_144", "contents are reproducible or expire; no cross-region replica needed");
    if (!props.publishesEvents) {
      skipCheck(this.bucket, "CKV2_AWS_62", "nothing consumes object events from this bucket");
    }

    new S3BucketPublicAccessBlock(this, "public-access-block", {
      bucket: bucketId,
      blockPublicAcls: true,
      blockPublicPolicy: true,
      ignorePublicAcls: true,
      restrictPublicBuckets: true,
    });
    new S3BucketOwnershipControls(this, "ownership", {
      bucket: bucketId,
      rule: { objectOwnership: "BucketOwnerEnforced" },
    });
    new S3BucketVersioningA(this, "versioning", {
      bucket: bucketId,
      versioningConfiguration: { status: "Enabled" },
    });
    new S3BucketServerSideEncryptionConfigurationA(this, "encryption", {
      bucket: bucketId,
      rule: [
        props.kmsKeyArn
          ? {
              applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms", kmsMasterKeyId: props.kmsKeyArn },
              // One data key per bucket rather than per object: fewer KMS calls.
              bucketKeyEnabled: true,
            }
          : { applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" } },
      ],
    });
    if (!props.kmsKeyArn) {
      skipCheck(this.bucket, "CKV_AWS_145", "S3 server access logs can only be delivered to an SSE-S3 bucket");
    }

    new S3BucketLifecycleConfiguration(this, "lifecycle", {
      bucket: bucketId,
      rule: [
        {
          id: "expire",
          status: "Enabled",
          filter: [{ prefix: "" }],
          ...(props.expirationDays ? { expiration: [{ days: props.expirationDays }] } : {}),
          noncurrentVersionExpiration: [{ noncurrentDays: props.noncurrentVersionDays ?? 1 }],
          abortIncompleteMultipartUpload: [{ daysAfterInitiation: 1 }],
        },
      ],
    });

    if (props.accessLogs) {
      new S3BucketLoggingA(this, "logging", {
        bucket: bucketId,
        targetBucket: props.accessLogs.bucket.bucket.id,
        targetPrefix: props.accessLogs.prefix,
      });
    }
    // The access-log bucket itself has no access log (it would log into
    // itself); checkov accepts a bucket that is a logging target.

    const statements: object[] = [
      {
        Sid: "TlsOnly",
        Effect: "Deny",
        Principal: "*",
        Action: "s3:*",
        Resource: [this.bucket.arn, `${this.bucket.arn}/*`],
        Condition: { Bool: { "aws:SecureTransport": "false" } },
      },
    ];
    if (props.receivesAccessLogsFrom) {
      statements.push({
        Sid: "S3ServerAccessLogs",
        Effect: "Allow",
        Principal: { Service: "logging.s3.amazonaws.com" },
        Action: "s3:PutObject",
        Resource: `${this.bucket.arn}/*`,
        Condition: { StringEquals: { "aws:SourceAccount": props.receivesAccessLogsFrom } },
      });
    }
    new S3BucketPolicy(this, "policy", {
      bucket: bucketId,
      policy: JSON.stringify({ Version: "2012-10-17", Statement: statements }),
    });
  }

  get arn(): string {
    return this.bucket.arn;
  }
}
