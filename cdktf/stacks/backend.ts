import { S3Backend, TerraformStack } from "cdktn";
import { Config, ConfigError } from "../config";

/**
 * Where a stack keeps its Terraform state. With `JOBS_STATE_BUCKET` (a
 * deployment): the S3 bucket `just bootstrap-state` creates, one key per
 * stage and stack, locked with an S3 lock file (`use_lockfile`, Terraform
 * ≥ 1.10 / OpenTofu ≥ 1.10), encrypted with the state bucket's KMS key
 * (`JOBS_STATE_KMS_KEY`). Without it: cdktn's default local state file
 * (cdktf/terraform.<stack>.tfstate), so synthesis and the local target need
 * no AWS account.
 */
export function configureBackend(stack: TerraformStack, config: Config, stackId: string): void {
  if (!config.stateBucket) return;
  if (!config.stateKmsKey) {
    throw new ConfigError(
      `JOBS_STATE_BUCKET is set without JOBS_STATE_KMS_KEY, the ARN of the state bucket's KMS key: set both as \`just bootstrap-state\` prints them.`,
    );
  }
  new S3Backend(stack, {
    bucket: config.stateBucket,
    key: `jobs/${config.stage}/${stackId}.tfstate`,
    region: config.stateRegion,
    // `encrypt` alone makes Terraform and OpenTofu send
    // `x-amz-server-side-encryption: AES256`, which overrides the bucket's
    // KMS default; with `kms_key_id` they send `aws:kms` and this key
    // (https://developer.hashicorp.com/terraform/language/backend/s3,
    // https://opentofu.org/docs/language/settings/backends/s3/). A key ARN:
    // the backend rejects aliases.
    encrypt: true,
    kmsKeyId: config.stateKmsKey,
    useLockfile: true,
  });
}
