// The CDK Terrain app of the job ingestion service. `npm run synth` writes
// cdktf.out/stacks/{cognito,app}/cdk.tf.json; `just deploy` applies them to AWS
// and `just up` runs the app stack locally (see docs/contract.md).
//
// Configuration, from the environment:
//   JOBS_STAGE           stage name, default `dev`; every resource is named
//                        `jobs-<stage>-...`. Only `prod` turns on deletion
//                        protection for the user pool and the table.
//   JOBS_REGION          AWS region of both stacks, default `us-east-1`.
//   JOBS_LAMBDA_ARCH     `arm64` (default) or `x86_64`: the functions'
//                        architecture, and the default zip directory.
//   JOBS_LAMBDA_ZIP_DIR  directory holding `<function>/bootstrap.zip` for each
//                        function, default `<repo>/target/lambda/<arch>`
//                        (built by `just build`).
import { App } from "cdktn";
import { Config, ConfigError, loadConfig } from "./config";
import { AppStack } from "./stacks/app-stack";
import { CognitoStack } from "./stacks/cognito-stack";

/** Adds the stacks to `app`. */
export function defineStacks(app: App, config: Config): { cognito: CognitoStack; app: AppStack } {
  const cognito = new CognitoStack(app, "cognito", { config });
  // The cognito values are tokens: cdktn turns them into outputs of the
  // cognito stack read through a terraform_remote_state in the app stack.
  const appStack = new AppStack(app, "app", {
    config,
    cognitoIssuer: cognito.issuer,
    userPoolClientId: cognito.userPoolClient.id,
  });
  return { cognito, app: appStack };
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
