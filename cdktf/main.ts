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
 * S3 native state locking (`use_lockfile`), which the deployed stacks use.
 * Also in cdktf.json for the CLI.
 */
export const TARGET_VERSIONS = { terraform: ">=1.10.0", opentofu: ">=1.10.0" };

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

if (require.main === module) {
  try {
    const app = new App();
    defineStacks(app, loadConfig());
    app.synth();
  } catch (error) {
    // A mistake in the environment or a missing build: one sentence, no stack trace.
    if (!(error instanceof ConfigError)) throw error;
    console.error(`error: ${error.message}`);
    process.exitCode = 1;
  }
}
