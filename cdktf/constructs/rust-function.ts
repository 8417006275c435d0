import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { AssetType, TerraformAsset } from "cdktn";
import { Construct } from "constructs";
import { CloudwatchLogGroup } from "@cdktn/provider-aws/lib/cloudwatch-log-group";
import { IamRole } from "@cdktn/provider-aws/lib/iam-role";
import { IamRolePolicy } from "@cdktn/provider-aws/lib/iam-role-policy";
import { LambdaFunction } from "@cdktn/provider-aws/lib/lambda-function";
import { Config, ConfigError } from "../config";
import { skipCheck } from "./checkov";
import { assumeRolePolicy, PolicyStatement, policyDocument } from "./iam";

export interface RustFunctionProps {
  readonly config: Config;
  /** The binary's name (`functions/<name>`, docs/contract.md), e.g. `job-processor`. */
  readonly name: string;
  /** Prefix of the function's name, default `config.namePrefix` (regional stacks add their region). */
  readonly namePrefix?: string;
  readonly timeoutSeconds: number;
  readonly memorySizeMb: number;
  /**
   * The executions reserved for the function (its ceiling, and capacity no
   * other function can take) when `config.reservedConcurrency` is on; with
   * it off the function shares the account's unreserved pool.
   */
  readonly reservedConcurrency: number;
  /** The function's configuration; `RUST_LOG` is added here for every function. */
  readonly environment: Record<string, string>;
  /** What the function may do besides writing its own logs and traces. */
  readonly permissions?: PolicyStatement[];
  /** The `RUST_LOG` filter. */
  readonly logLevel?: string;
  /** The stack's key: encrypts the log group and the environment variables. */
  readonly kmsKeyArn: string;
  /** How long the log group keeps logs. */
  readonly logRetentionDays?: number;
  /**
   * Where failed asynchronous invocations go after Lambda's retries (the
   * role needs sqs:SendMessage on it). Without one, the function is invoked
   * only synchronously or by SQS.
   */
  readonly deadLetterQueueArn?: string;
}

/** The log group of the function `functionName` (also a pattern: `jobs-dev-*`). */
export function lambdaLogGroupName(functionName: string): string {
  return `/aws/lambda/${functionName}`;
}

/**
 * A Lambda function from a prebuilt `cargo lambda` zip
 * (`<lambdaZipDir>/<name>/bootstrap.zip`), with its own role, least-privilege
 * inline policy and log group.
 */
export class RustFunction extends Construct {
  readonly function: LambdaFunction;
  readonly role: IamRole;
  readonly logGroup: CloudwatchLogGroup;

  constructor(scope: Construct, id: string, props: RustFunctionProps) {
    super(scope, id);
    const { config } = props;
    const functionName = `${props.namePrefix ?? config.namePrefix}-${props.name}`;

    const zipPath = path.join(config.lambdaZipDir, props.name, "bootstrap.zip");
    if (!fs.existsSync(zipPath)) {
      throw new ConfigError(`The Lambda package ${zipPath} does not exist: build it with \`just build\`.`);
    }
    // Lambda's CodeSha256 is base64(sha256(zip)): a source_code_hash in that form
    // changes exactly when the bytes do, so an unchanged binary never
    // redeploys. The hex form of the same digest names the asset's directory
    // (base64 may contain '/').
    const digest = createHash("sha256").update(fs.readFileSync(zipPath)).digest();
    const asset = new TerraformAsset(this, "package", {
      path: zipPath,
      type: AssetType.FILE,
      assetHash: digest.toString("hex"),
    });

    // Created here rather than by Lambda on first write, so that it has a
    // retention period and the role can be limited to this one group.
    const logGroup = new CloudwatchLogGroup(this, "logs", {
      name: lambdaLogGroupName(functionName),
      retentionInDays: props.logRetentionDays ?? 30,
      kmsKeyId: props.kmsKeyArn,
    });
    this.logGroup = logGroup;
    skipCheck(logGroup, "CKV_AWS_338", "operational logs are kept 30 days by design; job records live in DynamoDB");

    this.role = new IamRole(this, "role", {
      name: functionName,
      assumeRolePolicy: assumeRolePolicy("lambda.amazonaws.com"),
    });
    const policy = new IamRolePolicy(this, "policy", {
      name: functionName,
      role: this.role.id,
      policy: policyDocument([
        { actions: ["logs:CreateLogStream", "logs:PutLogEvents"], resources: [`${logGroup.arn}:*`] },
        // X-Ray has no resource-level permissions: these two actions only
        // accept "*" as the resource.
        { actions: ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], resources: ["*"] },
        ...(props.permissions ?? []),
      ]),
    });

    this.function = new LambdaFunction(this, "function", {
      functionName,
      role: this.role.arn,
      filename: asset.path,
      sourceCodeHash: digest.toString("base64"),
      runtime: "provided.al2023",
      handler: "bootstrap",
      architectures: [config.lambdaArchitecture],
      timeout: props.timeoutSeconds,
      memorySize: props.memorySizeMb,
      ...(config.reservedConcurrency ? { reservedConcurrentExecutions: props.reservedConcurrency } : {}),
      environment: { variables: { ...props.environment, RUST_LOG: props.logLevel ?? "info" } },
      kmsKeyArn: props.kmsKeyArn,
      ...(props.deadLetterQueueArn ? { deadLetterConfig: { targetArn: props.deadLetterQueueArn } } : {}),
      tracingConfig: { mode: "Active" },
      // The functions already write one JSON object per line (tracing's JSON
      // format); JSON platform logs keep the whole group machine-readable.
      loggingConfig: { logFormat: "JSON", logGroup: logGroup.name },
      // The policy must exist before the function (and any event source
      // mapping on it) starts: Lambda checks the role when the mapping is made.
      dependsOn: [logGroup, policy],
    });
    skipCheck(this.function, "CKV_AWS_117", "reaches only AWS APIs over TLS with IAM auth; a VPC would add NAT cost and cold-start latency");
    skipCheck(this.function, "CKV_AWS_272", "zips are built and hashed by the pipeline; no AWS Signer profile in this project");
    if (!config.reservedConcurrency) {
      skipCheck(
        this.function,
        "CKV_AWS_115",
        "JOBS_RESERVED_CONCURRENCY=off: the account's Lambda concurrency quota cannot hold reservations (docs/deploy.md)",
      );
    }
    if (!props.deadLetterQueueArn) {
      skipCheck(this.function, "CKV_AWS_116", "invoked synchronously or by SQS, whose own DLQ keeps failed messages");
    }
  }
}
