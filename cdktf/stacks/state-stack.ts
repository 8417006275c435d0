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
import { KmsKey } from "../constructs/kms-key";
import { SecureBucket } from "../constructs/secure-bucket";

/**
 * The actions of AWS's managed policy AmazonAPIGatewayPushToCloudWatchLogs,
 * which API Gateway's documentation names as the permissions of its
 * CloudWatch role
 * (https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html,
 * https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonAPIGatewayPushToCloudWatchLogs.html).
 */
export const API_GATEWAY_CLOUDWATCH_ACTIONS = [
  "logs:CreateLogGroup",
  "logs:CreateLogStream",
  "logs:DescribeLogGroups",
  "logs:DescribeLogStreams",
  "logs:PutLogEvents",
  "logs:GetLogEvents",
  "logs:FilterLogEvents",
] as const;

/**
 * Where API Gateway's account-wide logging role may use those actions: the
 * managed policy's `*`, narrowed to this account's log groups in the
 * configured regions, which is as far as AWS allows. Narrower does not work:
 * when the account setting is saved, API Gateway test-writes a log group of
 * its own choosing (`/aws/apigateway/welcome`), execution logs go to
 * `API-Gateway-Execution-Logs_<api id>/<stage>` (the id is known only after
 * the API exists, in another stack), and `logs:DescribeLogGroups` is granted
 * only on `log-group:*`. A region left out here could not save the setting.
 */
export function apiGatewayLogResources(regions: string[], accountId: string): string[] {
  return regions.flatMap((logRegion) => {
    const groups = `arn:aws:logs:${logRegion}:${accountId}:log-group:*`;
    return [groups, `${groups}:log-stream:*`];
  });
}

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
    const logsPolicy = new IamRolePolicy(this, "apigateway-logs-policy", {
      name: "jobs-apigateway-cloudwatch-logs",
      role: apiGatewayLogs.id,
      policy: policyDocument([
        {
          actions: [...API_GATEWAY_CLOUDWATCH_ACTIONS],
          resources: apiGatewayLogResources(config.regions, account.accountId),
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
        // API Gateway test-writes with the role when the setting is saved:
        // the policy must be attached first (the role alone is not enough).
        dependsOn: [logsPolicy],
      });
    }

    new TerraformOutput(this, "stateBucket", { value: state.bucket.bucket });
    new TerraformOutput(this, "stateRegion", { value: region });
    // The S3 backend of every other stack encrypts with this key (JOBS_STATE_KMS_KEY).
    new TerraformOutput(this, "stateKmsKey", { value: key.arn });
  }
}
