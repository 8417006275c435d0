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
  /** `JOBS_REGION`: the AWS region of both stacks. */
  readonly region: string;
  /** `JOBS_LAMBDA_ARCH`: the architecture the function zips were built for. */
  readonly lambdaArchitecture: LambdaArchitecture;
  /** `JOBS_LAMBDA_ZIP_DIR`: holds `<function>/bootstrap.zip` for each function. */
  readonly lambdaZipDir: string;
  /**
   * Only the `prod` stage protects stateful resources (user pool, table)
   * against deletion; every other stage is disposable.
   */
  readonly deletionProtection: boolean;
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

  const architecture = env.JOBS_LAMBDA_ARCH || "arm64";
  if (!isLambdaArchitecture(architecture)) {
    throw new ConfigError(
      `JOBS_LAMBDA_ARCH="${architecture}" is invalid: use one of ${LAMBDA_ARCHITECTURES.join(", ")}.`,
    );
  }

  return {
    stage,
    namePrefix: `jobs-${stage}`,
    region,
    lambdaArchitecture: architecture,
    lambdaZipDir: path.resolve(
      env.JOBS_LAMBDA_ZIP_DIR || path.join(REPO_ROOT, "target", "lambda", architecture),
    ),
    deletionProtection: stage === "prod",
  };
}

function isLambdaArchitecture(value: string): value is LambdaArchitecture {
  return (LAMBDA_ARCHITECTURES as readonly string[]).includes(value);
}
