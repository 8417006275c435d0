import { S3Backend, TerraformStack } from "cdktn";
import { Config } from "../config";

/**
 * Where a stack keeps its Terraform state. With `JOBS_STATE_BUCKET` (a
 * deployment): the S3 bucket `just bootstrap-state` creates, one key per
 * stage and stack, locked with an S3 lock file (`use_lockfile`, Terraform
 * ≥ 1.10 / OpenTofu ≥ 1.10). Without it: cdktn's default local state file
 * (cdktf/terraform.<stack>.tfstate), so synthesis and the local target need
 * no AWS account.
 */
export function configureBackend(stack: TerraformStack, config: Config, stackId: string): void {
  if (!config.stateBucket) return;
  new S3Backend(stack, {
    bucket: config.stateBucket,
    key: `jobs/${config.stage}/${stackId}.tfstate`,
    region: config.stateRegion,
    encrypt: true,
    useLockfile: true,
  });
}
