// The deployment configuration, read once from the environment (the variables
// are listed in main.ts). Every value is checked here so that a typo fails the
// synth with one sentence instead of producing a stack that fails to apply.
import * as path from "node:path";

/** Lambda instruction set architectures this project builds. */
export const LAMBDA_ARCHITECTURES = ["arm64", "x86_64"] as const;
export type LambdaArchitecture = (typeof LAMBDA_ARCHITECTURES)[number];

/** The git repository root (this file lives in <repo>/cdktf/). */
export const REPO_ROOT = path.resolve(__dirname, "..");

export interface Config {
  /** `JOBS_STAGE`: the deployment stage, e.g. `dev`. */
  readonly stage: string;
  /** `jobs-<stage>`: the prefix of every resource name. */
  readonly namePrefix: string;
  /** The primary region (the first of `regions`): cognito, pipeline and the `app` stack. */
  readonly region: string;
  /**
   * `JOBS_REGIONS` (comma-separated; default `JOBS_REGION`, else `us-east-1`):
   * one app stack per region, the first is the primary.
   */
  readonly regions: string[];
  /** `JOBS_LAMBDA_ARCH`: the architecture the function zips were built for. */
  readonly lambdaArchitecture: LambdaArchitecture;
  /** `JOBS_LAMBDA_ZIP_DIR`: holds `<function>/bootstrap.zip` for each function. */
  readonly lambdaZipDir: string;
  /**
   * Only the `prod` stage protects stateful resources (user pool, table)
   * against deletion; every other stage is disposable.
   */
  readonly deletionProtection: boolean;
  /**
   * `JOBS_RESULTS_EXPIRATION_DAYS`: the result retention period (default 30
   * days). One number drives both the results bucket's expiration rule and
   * the job records' DynamoDB TTL (the processor's RESULT_RETENTION_DAYS).
   */
  readonly resultsExpirationDays: number;
  /**
   * `JOBS_STATE_BUCKET`: the S3 bucket holding the Terraform state of deployed
   * stages (created by `just bootstrap-state`). Unset: local state files, as
   * for synthesis and the local target.
   */
  readonly stateBucket?: string;
  /** `JOBS_STATE_REGION`: the state bucket's region, default the primary region. */
  readonly stateRegion: string;
}

/** A configuration mistake the user can fix; main.ts prints only its message. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

// Short and lowercase: the stage ends up in S3 bucket names (lowercase, at most
// 63 characters) and IAM role names (at most 64).
const STAGE_PATTERN = /^[a-z][a-z0-9-]{0,19}$/;
const REGION_PATTERN = /^[a-z]{2}(-[a-z]+)+-\d$/;

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const stage = env.JOBS_STAGE || "dev";
  if (!STAGE_PATTERN.test(stage)) {
    throw new ConfigError(
      `JOBS_STAGE="${stage}" is invalid: use 1 to 20 lowercase letters, digits or dashes, starting with a letter.`,
    );
  }

  const region = env.JOBS_REGION || "us-east-1";
  if (!REGION_PATTERN.test(region)) {
    throw new ConfigError(`JOBS_REGION="${region}" is not an AWS region name such as us-east-1.`);
  }
  const regions = env.JOBS_REGIONS ? env.JOBS_REGIONS.split(",").map((r) => r.trim()) : [region];
  for (const r of regions) {
    if (!REGION_PATTERN.test(r)) {
      throw new ConfigError(`JOBS_REGIONS="${env.JOBS_REGIONS}" lists "${r}", which is not an AWS region name.`);
    }
  }
  if (new Set(regions).size !== regions.length) {
    throw new ConfigError(`JOBS_REGIONS="${env.JOBS_REGIONS}" lists a region twice.`);
  }

  const expiration = env.JOBS_RESULTS_EXPIRATION_DAYS || "30";
  if (!/^[1-9][0-9]{0,4}$/.test(expiration)) {
    throw new ConfigError(`JOBS_RESULTS_EXPIRATION_DAYS="${expiration}" is invalid: use a whole number of days (1 or more).`);
  }

  const stateBucket = env.JOBS_STATE_BUCKET || undefined;
  if (stateBucket !== undefined && !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(stateBucket)) {
    throw new ConfigError(`JOBS_STATE_BUCKET="${stateBucket}" is not an S3 bucket name.`);
  }
  const stateRegion = env.JOBS_STATE_REGION || regions[0];
  if (!REGION_PATTERN.test(stateRegion)) {
    throw new ConfigError(`JOBS_STATE_REGION="${stateRegion}" is not an AWS region name such as us-east-1.`);
  }

  const architecture = env.JOBS_LAMBDA_ARCH || "arm64";
  if (!isLambdaArchitecture(architecture)) {
    throw new ConfigError(
      `JOBS_LAMBDA_ARCH="${architecture}" is invalid: use one of ${LAMBDA_ARCHITECTURES.join(", ")}.`,
    );
  }

  return {
    stage,
    namePrefix: `jobs-${stage}`,
    region: regions[0],
    regions,
    lambdaArchitecture: architecture,
    lambdaZipDir: path.resolve(
      env.JOBS_LAMBDA_ZIP_DIR || path.join(REPO_ROOT, "target", "lambda", architecture),
    ),
    deletionProtection: stage === "prod",
    resultsExpirationDays: Number(expiration),
    ...(stateBucket ? { stateBucket } : {}),
    stateRegion,
  };
}

function isLambdaArchitecture(value: string): value is LambdaArchitecture {
  return (LAMBDA_ARCHITECTURES as readonly string[]).includes(value);
}
