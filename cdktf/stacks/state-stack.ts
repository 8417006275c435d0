import * as path from "node:path";
import { LocalBackend, TerraformOutput, TerraformStack } from "cdktn";
import { Construct } from "constructs";
import { ApiGatewayAccount } from "@cdktn/provider-aws/lib/api-gateway-account";
import { DataAwsCallerIdentity } from "@cdktn/provider-aws/lib/data-aws-caller-identity";
import { IamRole } from "@cdktn/provider-aws/lib/iam-role";
import { IamRolePolicy } from "@cdktn/provider-aws/lib/iam-role-policy";
import { AwsProvider } from "@cdktn/provider-aws/lib/provider";
import { Config, REPO_ROOT } from "../config";
import { assumeRolePolicy, policyDocument } from "../constructs/iam";
import { accessLogGroupName } from "../constructs/job-api";
import { KmsKey } from "../constructs/kms-key";
import { SecureBucket } from "../constructs/secure-bucket";

/**
 * What a deployment needs once per account: the S3 bucket holding the
 * Terraform state of every stage (one key per stage and stack, S3 lock
 * files), and, in every configured region, API Gateway's account setting for
 * writing logs to CloudWatch (without it a stage's access logs cannot be
 * turned on). Applied by `just bootstrap-state`, with local state (the bucket
 * cannot hold its own state before it exists); see docs/deploy.md.
 */
export class StateStack extends TerraformStack {
  constructor(scope: Construct, id: string, props: { config: Config }) {
    super(scope, id);
    const { config } = props;
    const region = config.stateRegion;
    // Outside cdktf/cdktf.out (re-synthesized often) and out of git (.deploy is ignored).
    new LocalBackend(this, { path: path.join(REPO_ROOT, ".deploy", "bootstrap", "terraform.tfstate") });
    new AwsProvider(this, "aws", { region, defaultTags: [{ tags: { project: "jobs", stack: "state" } }] });
    const account = new DataAwsCallerIdentity(this, "current-account");

    const key = new KmsKey(this, "key", {
      alias: "jobs-terraform-state",
      description: "Encrypts the job ingestion service's Terraform state",
      region,
      accountId: account.accountId,
      deletionWindowDays: 30,
    });
    const logs = new SecureBucket(this, "access-logs", {
      bucketName: `jobs-tfstate-logs-${account.accountId}-${region}`,
      expirationDays: 365,
      receivesAccessLogsFrom: account.accountId,
    });
    const state = new SecureBucket(this, "state", {
      bucketName: config.stateBucket ?? `jobs-tfstate-${account.accountId}-${region}`,
      kmsKeyArn: key.arn,
      accessLogs: { bucket: logs, prefix: "state/" },
      // State is never expired; old versions stay 90 days to roll back a bad apply.
      noncurrentVersionDays: 90,
      // Holds every stage's state: removing it is a deliberate, separate step.
      forceDestroy: false,
    });

    // One account-wide setting per region: here rather than in each stage's
    // app stack, where stages would overwrite it and a destroyed stage would
    // leave it pointing at a deleted role.
    const apiGatewayLogs = new IamRole(this, "apigateway-logs-role", {
      name: "jobs-apigateway-cloudwatch-logs",
      assumeRolePolicy: assumeRolePolicy("apigateway.amazonaws.com"),
    });
    // API Gateway writes every stage's access log group
    // (`/aws/apigateway/jobs-<stage>[-<region>]-api`) with this role, in each
    // configured region of this account. Execution logging is off in every
    // stage (the CKV2_AWS_4 skip on the stage), so API Gateway's own
    // `API-Gateway-Execution-Logs_*` groups are not granted.
    const stageAccessLogs = config.regions.flatMap((logRegion) => {
      const group = `arn:aws:logs:${logRegion}:${account.accountId}:log-group:${accessLogGroupName("jobs-*-api")}`;
      return [group, `${group}:*`];
    });
    new IamRolePolicy(this, "apigateway-logs-policy", {
      name: "jobs-apigateway-cloudwatch-logs",
      role: apiGatewayLogs.id,
      policy: policyDocument([
        {
          actions: ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogGroups", "logs:DescribeLogStreams"],
          resources: stageAccessLogs,
        },
      ]),
    });
    for (const apiRegion of config.regions) {
      const provider =
        apiRegion === region
          ? undefined
          : new AwsProvider(this, `aws-${apiRegion}`, {
              alias: apiRegion,
              region: apiRegion,
              defaultTags: [{ tags: { project: "jobs", stack: "state" } }],
            });
      new ApiGatewayAccount(this, `apigateway-account-${apiRegion}`, {
        provider,
        cloudwatchRoleArn: apiGatewayLogs.arn,
      });
    }

    new TerraformOutput(this, "stateBucket", { value: state.bucket.bucket });
    new TerraformOutput(this, "stateRegion", { value: region });
  }
}
