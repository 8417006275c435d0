// The CDK Terrain app of the job ingestion service. `npm run synth` writes
// cdktf.out/stacks/{cognito,app}/cdk.tf.json; `just deploy` applies them to AWS
// and `just up` runs the app stack locally (see docs/contract.md).
//
// Configuration, from the environment:
//   JOBS_STAGE           stage name, default `dev`; every resource is named
//                        `jobs-<stage>-...`. Only `prod` turns on deletion
//                        protection for the user pool and the table.
//   JOBS_REGIONS         comma-separated regions, one app stack each: the
//                        first (primary) is stack `app` with the cognito and
//                        pipeline stacks, the others `app-<region>`. Default:
//                        JOBS_REGION (one region), else the committed list in
//                        cdktf/regions.json.
//   JOBS_RESULTS_EXPIRATION_DAYS  results expire after this many days (30).
//   JOBS_METRICS_NAMESPACE  CloudWatch namespace of the EMF business metrics,
//                        default `JobIngestion/<stage>`.
//   JOBS_STATE_BUCKET / JOBS_STATE_REGION  the S3 state backend of a
//                        deployment (docs/deploy.md); unset: local state.
//   JOBS_LAMBDA_ARCH     `arm64` (default) or `x86_64`: the functions'
//                        architecture, and the default zip directory.
//   JOBS_LAMBDA_ZIP_DIR  directory holding `<function>/bootstrap.zip` for each
//                        function, default `<repo>/target/lambda/<arch>`
//                        (built by `just build`).
//   JOBS_STATE_KMS_KEY   the state bucket's KMS key ARN, with JOBS_STATE_BUCKET.
//   JOBS_RESERVED_CONCURRENCY  `on` (default) or `off`: reserved concurrency.
//   JOBS_SYNTH_STACKS    `state`: synthesize only the state stack (used by
//                        `just bootstrap-state`, which needs no function zips).
//
// A synthesis leaves exactly the stacks it defines in cdktf.out/stacks: a
// stack folder the app no longer defines (a region taken off the list) is
// removed, so that nothing applies it by mistake (docs/deploy.md).
import * as fs from "node:fs";
import * as path from "node:path";
import { App } from "cdktn";
import { Config, ConfigError, loadConfig } from "./config";
import { AppStack } from "./stacks/app-stack";
import { CognitoStack } from "./stacks/cognito-stack";
import { PipelineStack } from "./stacks/pipeline-stack";
import { StateStack } from "./stacks/state-stack";

/** The app stack of `region`: `app` in the primary region, `app-<region>` in the others. */
export function appStackName(config: Config, region: string): string {
  return region === config.region ? "app" : `app-${region}`;
}

export interface Stacks {
  readonly cognito: CognitoStack;
  /** The primary region's app stack (`app`), the one the local target runs. */
  readonly app: AppStack;
  /** One app stack per configured region, the primary first. */
  readonly apps: AppStack[];
  readonly pipeline: PipelineStack;
  readonly state: StateStack;
}

/**
 * The Terraform and OpenTofu releases the stacks are written for: 1.10 brought
 * S3 native state locking (`use_lockfile`), which the deployed stacks use;
 * Terraform 1.11 and OpenTofu 1.11 ephemeral resources and write-only
 * attributes, with which the webhook signing secret's value is made and
 * stored without entering the state (job-webhooks.ts). Also in cdktf.json for
 * the CLI.
 */
export const TARGET_VERSIONS = { terraform: ">=1.11.0", opentofu: ">=1.11.0" };

/** Adds only the state stack to `app` (`just bootstrap-state`: no function zips needed). */
export function defineStateStack(app: App, config: Config): StateStack {
  app.node.setContext("targetVersions", TARGET_VERSIONS);
  return new StateStack(app, "state", { config });
}

/** Adds the stacks to `app`. */
export function defineStacks(app: App, config: Config): Stacks {
  app.node.setContext("targetVersions", TARGET_VERSIONS);
  const cognito = new CognitoStack(app, "cognito", { config });
  // The cognito values are tokens: cdktn turns them into outputs of the
  // cognito stack read through a terraform_remote_state in each app stack.
  // One user pool for all regions: its tokens are verified anywhere.
  const apps = config.regions.map(
    (region) =>
      new AppStack(app, appStackName(config, region), {
        config,
        region,
        // IAM role and S3 bucket names are global: the other regions' names carry the region.
        namePrefix: region === config.region ? config.namePrefix : `${config.namePrefix}-${region}`,
        cognitoIssuer: cognito.issuer,
        userPoolId: cognito.userPool.id,
        userPoolClientId: cognito.userPoolClient.id,
      }),
  );
  const pipeline = new PipelineStack(app, "pipeline", { config });
  const state = new StateStack(app, "state", { config });
  return { cognito, app: apps[0], apps, pipeline, state };
}

/**
 * Removes the folders of `<outdir>/stacks` that are not among `defined`, and
 * says so: a folder left from an earlier synthesis would otherwise look like
 * a stack to apply. Its resources stay deployed until destroyed.
 */
export function removeUndefinedStacks(outdir: string, defined: string[]): string[] {
  const stacksDir = path.join(outdir, "stacks");
  if (!fs.existsSync(stacksDir)) return [];
  const removed = fs
    .readdirSync(stacksDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && !defined.includes(entry.name))
    .map((entry) => entry.name);
  for (const name of removed) {
    fs.rmSync(path.join(stacksDir, name), { recursive: true, force: true });
    console.error(
      `note: removed ${path.join(outdir, "stacks", name)}: the app no longer defines stack '${name}' ` +
        "(whatever it deployed stays until destroyed; see docs/deploy.md, \"Removing a region\").",
    );
  }
  return removed;
}

if (require.main === module) {
  try {
    const config = loadConfig();
    // cdktn creates only the last folder of its output directory.
    const outdir = process.env.CDKTF_OUTDIR ?? "cdktf.out";
    fs.mkdirSync(outdir, { recursive: true });
    const app = new App({ outdir });
    const only = process.env.JOBS_SYNTH_STACKS;
    if (only !== undefined && only !== "state") {
      throw new ConfigError(`JOBS_SYNTH_STACKS="${only}" is invalid: only "state" (just bootstrap-state) is supported.`);
    }
    const stacks = only === "state" ? [defineStateStack(app, config)] : Object.values(defineStacks(app, config)).flat();
    app.synth();
    removeUndefinedStacks(outdir, [...new Set(stacks.map((stack) => stack.node.id))]);
  } catch (error) {
    // A mistake in the environment or a missing build: one sentence, no stack trace.
    if (!(error instanceof ConfigError)) throw error;
    console.error(`error: ${error.message}`);
    process.exitCode = 1;
  }
}
