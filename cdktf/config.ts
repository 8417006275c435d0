// The deployment configuration, read once from the environment (the variables
// are listed in main.ts). Every value is checked here so that a typo fails the
// synth with one sentence instead of producing a stack that fails to apply.
import * as fs from "node:fs";
import * as path from "node:path";

/** Lambda instruction set architectures this project builds. */
export const LAMBDA_ARCHITECTURES = ["arm64", "x86_64"] as const;
export type LambdaArchitecture = (typeof LAMBDA_ARCHITECTURES)[number];

/** The git repository root (this file lives in <repo>/cdktf/). */
export const REPO_ROOT = path.resolve(__dirname, "..");

/**
 * The committed list of regions, `{"regions": ["us-east-1", ...]}`: one
 * config for every stage and the pipeline. `JOBS_REGIONS` (or `JOBS_REGION`)
 * overrides it for one run.
 */
export const REGIONS_FILE = path.join(__dirname, "regions.json");

/** The EMF namespace when `JOBS_METRICS_NAMESPACE` is not set (docs/contract.md). */
export function defaultMetricsNamespace(stage: string): string {
  return `JobIngestion/${stage}`;
}

export interface Config {
  /** `JOBS_STAGE`: the deployment stage, e.g. `dev`. */
  readonly stage: string;
  /** `jobs-<stage>`: the prefix of every resource name. */
  readonly namePrefix: string;
  /** The primary region (the first of `regions`): cognito, pipeline and the `app` stack. */
  readonly region: string;
  /**
   * One app stack per region, the first is the primary: `JOBS_REGIONS`
   * (comma-separated), else `JOBS_REGION`, else the list in cdktf/regions.json.
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
  /**
   * `JOBS_STATE_KMS_KEY`: the ARN of the state bucket's KMS key (the `state`
   * stack's output `stateKmsKey`, printed by `just bootstrap-state`). The S3
   * backend encrypts the state with it: with `encrypt` alone Terraform and
   * OpenTofu ask S3 for AES256 and override the bucket's KMS default.
   * Required with `stateBucket` by every stack that keeps its state there.
   */
  readonly stateKmsKey?: string;
  /**
   * `JOBS_RESERVED_CONCURRENCY`: `on` (default) gives each function the
   * reserved concurrency its construct sets; `off` reserves none, for
   * accounts whose Lambda concurrency quota cannot hold them (new accounts
   * start at 10, and AWS keeps part of the quota unreserved; docs/deploy.md).
   */
  readonly reservedConcurrency: boolean;
  /**
   * `JOBS_METRICS_NAMESPACE`: the CloudWatch namespace of the functions' EMF
   * business metrics (their METRICS_NAMESPACE) and of the dashboard's
   * business graphs, default `JobIngestion/<stage>`.
   */
  readonly metricsNamespace: string;
}

export interface LoadConfigOptions {
  /** The regions file, default cdktf/regions.json (tests pass another). */
  readonly regionsFile?: string;
}

/** A configuration mistake the user can fix; main.ts prints only its message. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

// Short and lowercase: the stage ends up in S3 bucket names (lowercase, at most
// 63 characters) and IAM role names (at most 64).
const STAGE_PATTERN = /^[a-z][a-z0-9-]{0,19}$/;
const REGION_PATTERN = /^[a-z]{2}(-[a-z]+)+-\d$/;
// A KMS key ARN (not an alias): the S3 backend of Terraform and OpenTofu accepts no alias.
const KMS_KEY_ARN_PATTERN = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):\d{12}:key\/[A-Za-z0-9-]+$/;
// CloudWatch's namespace rules: 1 to 255 of these characters, not only
// spaces, and `AWS/` is reserved for AWS's own metrics.
const NAMESPACE_PATTERN = /^(?!AWS\/)(?=.*\S)[0-9A-Za-z.\-_/#: ]{1,255}$/;

export function loadConfig(env: NodeJS.ProcessEnv = process.env, options: LoadConfigOptions = {}): Config {
  const stage = env.JOBS_STAGE || "dev";
  if (!STAGE_PATTERN.test(stage)) {
    throw new ConfigError(
      `JOBS_STAGE="${stage}" is invalid: use 1 to 20 lowercase letters, digits or dashes, starting with a letter.`,
    );
  }

  const regions = configuredRegions(env, options.regionsFile ?? REGIONS_FILE);

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

  const stateKmsKey = env.JOBS_STATE_KMS_KEY || undefined;
  if (stateKmsKey !== undefined) {
    const match = KMS_KEY_ARN_PATTERN.exec(stateKmsKey);
    if (!match) {
      throw new ConfigError(
        `JOBS_STATE_KMS_KEY="${stateKmsKey}" is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>); use the stateKmsKey that \`just bootstrap-state\` prints.`,
      );
    }
    if (match[1] !== stateRegion) {
      throw new ConfigError(
        `JOBS_STATE_KMS_KEY="${stateKmsKey}" is in ${match[1]}, but the state bucket is in ${stateRegion} (JOBS_STATE_REGION): S3 encrypts only with a key of the bucket's region.`,
      );
    }
    if (!stateBucket) {
      throw new ConfigError(`JOBS_STATE_KMS_KEY="${stateKmsKey}" is set without JOBS_STATE_BUCKET: set both, as \`just bootstrap-state\` prints them.`);
    }
  }

  const reserved = env.JOBS_RESERVED_CONCURRENCY || "on";
  if (reserved !== "on" && reserved !== "off") {
    throw new ConfigError(`JOBS_RESERVED_CONCURRENCY="${reserved}" is invalid: use on or off.`);
  }

  const architecture = env.JOBS_LAMBDA_ARCH || "arm64";
  if (!isLambdaArchitecture(architecture)) {
    throw new ConfigError(
      `JOBS_LAMBDA_ARCH="${architecture}" is invalid: use one of ${LAMBDA_ARCHITECTURES.join(", ")}.`,
    );
  }

  const metricsNamespace = env.JOBS_METRICS_NAMESPACE || defaultMetricsNamespace(stage);
  if (!NAMESPACE_PATTERN.test(metricsNamespace)) {
    throw new ConfigError(
      `JOBS_METRICS_NAMESPACE="${metricsNamespace}" is not a CloudWatch namespace: use 1 to 255 letters, digits, spaces or . - _ / # : characters, not starting with AWS/.`,
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
    ...(stateKmsKey ? { stateKmsKey } : {}),
    reservedConcurrency: reserved === "on",
    metricsNamespace,
  };
}

/**
 * The regions: `JOBS_REGIONS`, else `JOBS_REGION`, else the regions file.
 * Every error names where the bad value came from.
 */
function configuredRegions(env: NodeJS.ProcessEnv, regionsFile: string): string[] {
  let regions: string[];
  let source: string;
  if (env.JOBS_REGIONS) {
    regions = env.JOBS_REGIONS.split(",").map((r) => r.trim());
    source = `JOBS_REGIONS="${env.JOBS_REGIONS}"`;
  } else if (env.JOBS_REGION) {
    if (!REGION_PATTERN.test(env.JOBS_REGION)) {
      throw new ConfigError(`JOBS_REGION="${env.JOBS_REGION}" is not an AWS region name such as us-east-1.`);
    }
    return [env.JOBS_REGION];
  } else {
    source = displayPath(regionsFile);
    regions = readRegionsFile(regionsFile, source);
  }
  for (const r of regions) {
    if (!REGION_PATTERN.test(r)) {
      throw new ConfigError(`${source} lists "${r}", which is not an AWS region name such as us-east-1.`);
    }
  }
  if (new Set(regions).size !== regions.length) {
    throw new ConfigError(`${source} lists a region twice.`);
  }
  return regions;
}

function readRegionsFile(file: string, shown: string): string[] {
  const expected = `it must hold {"regions": ["us-east-1", ...]}, the primary region first`;
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (error) {
    throw new ConfigError(`${shown} cannot be read (${(error as NodeJS.ErrnoException).code ?? error}): ${expected}.`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${shown} is not valid JSON (${(error as Error).message}): ${expected}.`);
  }
  const regions = (doc as { regions?: unknown } | null)?.regions;
  if (!Array.isArray(regions) || regions.length === 0 || !regions.every((r) => typeof r === "string")) {
    throw new ConfigError(`${shown} has no list of regions: ${expected}.`);
  }
  return regions;
}

/** `cdktf/regions.json` for a file of the repository, else the absolute path. */
function displayPath(file: string): string {
  const relative = path.relative(REPO_ROOT, file);
  return relative.startsWith("..") || path.isAbsolute(relative) ? file : relative;
}

function isLambdaArchitecture(value: string): value is LambdaArchitecture {
  return (LAMBDA_ARCHITECTURES as readonly string[]).includes(value);
}
