import { TerraformOutput, TerraformStack, TerraformVariable } from "cdktn";
import { Construct } from "constructs";
import { CloudwatchLogGroup } from "@cdktn/provider-aws/lib/cloudwatch-log-group";
import { CodebuildProject } from "@cdktn/provider-aws/lib/codebuild-project";
import { Codepipeline } from "@cdktn/provider-aws/lib/codepipeline";
import { CodestarconnectionsConnection } from "@cdktn/provider-aws/lib/codestarconnections-connection";
import { DataAwsCallerIdentity } from "@cdktn/provider-aws/lib/data-aws-caller-identity";
import { IamRole } from "@cdktn/provider-aws/lib/iam-role";
import { IamRolePolicy } from "@cdktn/provider-aws/lib/iam-role-policy";
import { AwsProvider } from "@cdktn/provider-aws/lib/provider";
import { Config } from "../config";
import { skipCheck } from "../constructs/checkov";
import { assumeRolePolicy, PolicyStatement, policyDocument } from "../constructs/iam";
import { KmsKey } from "../constructs/kms-key";
import { SecureBucket } from "../constructs/secure-bucket";
import { configureBackend } from "./backend";

/** The stage the pipeline deploys and tests before production. */
export const PIPELINE_TEST_STAGE = "test";
export const PIPELINE_PROD_STAGE = "prod";

/**
 * The Determinate Systems Nix installer, pinned to a release: the URL serves
 * that release's installer script, which installs that release's Nix.
 * Bumping it is a deliberate one-line change.
 */
export const NIX_INSTALLER_VERSION = "3.21.8";
export const NIX_INSTALLER_URL = `https://install.determinate.systems/nix/tag/v${NIX_INSTALLER_VERSION}`;
const NIX_PROFILE = "/nix/var/nix/profiles/default/etc/profile.d/nix-daemon.sh";

/**
 * The CodeBuild image (Amazon Linux) has neither Nix nor apt-get nor tofu,
 * so every project installs Nix first and runs its tools in the flake's dev
 * shell (Rust, cargo-lambda, just, Node, tofu, checkov, Python: the pinned
 * versions). No daemon (a container has no init: root uses the store
 * directly) and no build sandbox (an unprivileged container cannot create
 * its namespaces). An image that already has Nix skips the installer.
 */
const INSTALL = [
  `if ! command -v nix >/dev/null && [ ! -e ${NIX_PROFILE} ]; then ` +
    `(set -o pipefail; curl --proto '=https' --tlsv1.2 -sSf -L ${NIX_INSTALLER_URL} ` +
    `| sh -s -- install linux --init none --no-confirm --extra-conf "sandbox = false"); fi`,
  `if [ -e ${NIX_PROFILE} ]; then . ${NIX_PROFILE}; fi`,
  "nix --version",
];

/**
 * Where each project keeps its Nix store between builds: a Nix binary cache
 * (`nix copy --to file://...`: NAR files and their .narinfo, plain files),
 * inside the CodeBuild cache. The store itself cannot be cached: CodeBuild's
 * local custom cache links cached directories in with symlinks, and Nix
 * refuses a store under a symlink; the S3 cache restores files, and a binary
 * cache is only files.
 */
export const NIX_BINARY_CACHE = "/root/.cache/jobs-nix-store";
/** The dev shell's closure (`nix develop --profile`): what the binary cache holds. */
const DEV_SHELL_PROFILE = "/tmp/jobs-dev-shell";

/**
 * What every project caches between runs (CodeBuild's S3 cache; a build
 * restores it before its install phase and saves it after the post_build
 * phase; https://docs.aws.amazon.com/codebuild/latest/userguide/caching-s3.html,
 * buildspec `cache.paths`: https://docs.aws.amazon.com/codebuild/latest/userguide/build-spec-ref.html#build-spec.cache):
 * Cargo's downloaded crates and git dependencies, npm's download cache (the
 * ./just path), and the Nix binary cache above. Not `target/` (8.5 GB after
 * `just test`: moving it through S3 on every build costs about what it
 * saves, and the reproducibility check builds from a clean copy anyway).
 */
export const CACHE_PATHS = [
  "/root/.cargo/registry/**/*",
  "/root/.cargo/git/**/*",
  "/root/.npm/**/*",
  `${NIX_BINARY_CACHE}/**/*`,
];

/**
 * After Nix is installed: the dev shell's store paths from the previous
 * build's binary cache, if there is one. `--no-check-sigs` because the cache
 * is our own and unsigned (only the pipeline's roles can write its bucket);
 * Nix still checks every NAR against the hash in its .narinfo. A cache that
 * does not load is ignored: the paths then come from cache.nixos.org.
 */
const RESTORE_NIX_STORE =
  `if command -v nix >/dev/null && [ -s ${NIX_BINARY_CACHE}/dev-shell ]; then ` +
  `nix copy --no-check-sigs --from file://${NIX_BINARY_CACHE} "$(cat ${NIX_BINARY_CACHE}/dev-shell)" ` +
  `|| echo "the cached Nix store could not be loaded; continuing without it"; fi`;

/**
 * Before the cache is saved: the dev shell's closure into the binary cache,
 * rebuilt from scratch when the dev shell changed (so that it holds no stale
 * paths and does not grow from build to build).
 */
const SAVE_NIX_STORE = [
  `if [ -e ${NIX_PROFILE} ]; then . ${NIX_PROFILE}; fi`,
  `if command -v nix >/dev/null && nix develop --profile ${DEV_SHELL_PROFILE} --command true; then ` +
    `shell="$(readlink -f ${DEV_SHELL_PROFILE})"; ` +
    `if [ "$(cat ${NIX_BINARY_CACHE}/dev-shell 2>/dev/null)" != "$shell" ]; then ` +
    `rm -rf ${NIX_BINARY_CACHE} && nix copy --to "file://${NIX_BINARY_CACHE}?compression=zstd" "$shell" ` +
    `&& echo "$shell" > ${NIX_BINARY_CACHE}/dev-shell; fi; fi`,
];

/**
 * Defined at the start of every build phase. `run_just` runs a recipe in the
 * flake's dev shell, or, where Nix is absent, with the README's `./just`
 * (which installs its Python and Node tools into .tools/; Rust from rustup).
 * `dev_shell` runs any other command (tools/terraform.sh needs tofu) in the
 * dev shell when there is one.
 */
const SHELL_FUNCTIONS = [
  `if [ -e ${NIX_PROFILE} ]; then . ${NIX_PROFILE}; fi`,
  'dev_shell() { if command -v nix >/dev/null; then nix develop --command "$@"; else "$@"; fi; }',
  'run_just() { if command -v nix >/dev/null; then nix develop --command just "$@"; else ' +
    'command -v cargo >/dev/null || { curl --proto \'=https\' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal && export PATH="$HOME/.cargo/bin:$PATH"; }; ' +
    './just "$@"; fi; }',
];

/** A CodeBuild buildspec running `commands` in the repository's checkout. */
function buildspec(commands: string[], artifacts?: { files: string[] }): string {
  return JSON.stringify({
    version: "0.2",
    env: { shell: "bash" },
    phases: {
      install: { commands: [...INSTALL, RESTORE_NIX_STORE] },
      build: { commands: [...SHELL_FUNCTIONS, ...commands] },
      post_build: { commands: SAVE_NIX_STORE },
    },
    ...(artifacts ? { artifacts: { files: artifacts.files, "discard-paths": "no" } } : {}),
    cache: { paths: CACHE_PATHS },
  });
}

/**
 * The BuildAndTest project's time limit, from the suite's measured duration:
 * `./just test` on a clean clone took 1671 s and 1700 s in CI on 2 cores.
 * The pipeline adds the Nix install with the dev shell's download, and a
 * clean rebuild of the functions, and saves its cache. Each part is counted
 * at its 2-core duration (the LARGE instance's 8 vCPUs only shorten the
 * compiling part), and the sum is doubled for a slow or cold run: CodeBuild
 * stops a build at its timeout whatever it was doing
 * (https://docs.aws.amazon.com/codebuild/latest/APIReference/API_CreateProject.html,
 * timeoutInMinutes: 5 to 2160).
 */
export const BUILD_TIME_BUDGET_MINUTES = {
  suite: Math.ceil(1700 / 60),
  nixInstallAndDevShell: 15,
  cleanRebuild: 15,
  cacheRestoreAndSave: 5,
};
export const BUILD_TIMEOUT_MINUTES = 2 * Object.values(BUILD_TIME_BUDGET_MINUTES).reduce((a, b) => a + b, 0);

/**
 * BUILD_GENERAL1_LARGE on LINUX_CONTAINER: 8 vCPUs and 15 GB, four times the
 * cores the suite was measured on (Rust builds are most of its time and use
 * every core), and 128 GB of disk for the Nix store, `target/` and the
 * reproducibility check's clean copy
 * (https://docs.aws.amazon.com/codebuild/latest/userguide/build-env-ref-compute-types.html).
 */
export const BUILD_COMPUTE_TYPE = "BUILD_GENERAL1_LARGE";

/** Lets the AWS SDK and CLI in the build act as `$DEPLOY_ROLE_ARN`. */
const ASSUME_DEPLOYER = [
  `printf '[profile deployer]\\nrole_arn = %s\\ncredential_source = EcsContainer\\n' "$DEPLOY_ROLE_ARN" > "$HOME/.aws-deployer"`,
  'export AWS_CONFIG_FILE="$HOME/.aws-deployer" AWS_PROFILE=deployer',
];

/**
 * Deploys `stage`: assumes the stage's deployer role (created by the account
 * administrator, docs/deploy.md) and applies cognito then app with the state
 * in the S3 backend. The pipeline's approval is the confirmation `just deploy`
 * asks for on a terminal, so this calls tools/terraform.sh directly (in the
 * dev shell, which has tofu).
 */
function deployCommands(stage: string): string[] {
  return [
    ...ASSUME_DEPLOYER,
    `dev_shell tools/terraform.sh preflight deploy ${stage}`,
    "run_just build arm64",
    `run_just synth arm64 ${stage}`,
    `dev_shell tools/terraform.sh apply ${stage} cognito app`,
  ];
}

/**
 * The role a deploy of `stage` assumes. Created by the account administrator,
 * outside this stack, so that the pipeline cannot widen its own rights
 * (docs/deploy.md); the pipeline's roles may assume exactly these.
 */
export function deployerRoleName(stage: string): string {
  return `jobs-${stage}-deployer`;
}

export interface PipelineStackProps {
  readonly config: Config;
}

/**
 * GitHub (CodeStar connection) → build and test → deploy `test` → end-to-end
 * tests against it → manual approval → deploy `prod`.
 */
export class PipelineStack extends TerraformStack {
  constructor(scope: Construct, id: string, props: PipelineStackProps) {
    super(scope, id);
    const { config } = props;
    configureBackend(this, config, id);
    const region = config.region;
    const prefix = "jobs-pipeline";

    new AwsProvider(this, "aws", { region, defaultTags: [{ tags: { project: "jobs", stack: "pipeline" } }] });
    const account = new DataAwsCallerIdentity(this, "current-account");

    const repository = new TerraformVariable(this, "github_repository", {
      type: "string",
      default: "OWNER/REPOSITORY",
      description: "The GitHub repository (owner/name) the pipeline builds",
    });
    const branch = new TerraformVariable(this, "github_branch", {
      type: "string",
      default: "main",
      description: "The branch that triggers the pipeline",
    });

    const buildLogGroupName = `/aws/codebuild/${prefix}`;
    const key = new KmsKey(this, "key", {
      alias: prefix,
      description: "Encrypts the pipeline's artifacts and build logs",
      region,
      accountId: account.accountId,
      deletionWindowDays: 7,
      logGroupNames: [buildLogGroupName],
    });
    const accessLogs = new SecureBucket(this, "access-logs", {
      bucketName: `${prefix}-logs-${account.accountId}`,
      expirationDays: 90,
      receivesAccessLogsFrom: account.accountId,
    });
    // Build inputs and outputs only: short-lived, and removed with the stack.
    const artifacts = new SecureBucket(this, "artifacts", {
      bucketName: `${prefix}-artifacts-${account.accountId}`,
      kmsKeyArn: key.arn,
      accessLogs: { bucket: accessLogs, prefix: "artifacts/" },
      expirationDays: 30,
    });

    // Created PENDING: a GitHub admin authorizes it once in the console (docs/deploy.md).
    const connection = new CodestarconnectionsConnection(this, "github", {
      name: `${prefix}-github`,
      providerType: "GitHub",
    });

    const logGroup = new CloudwatchLogGroup(this, "build-logs", {
      name: buildLogGroupName,
      retentionInDays: 30,
      kmsKeyId: key.arn,
    });
    skipCheck(logGroup, "CKV_AWS_338", "build logs are kept 30 days by design; the pipeline history keeps the results");

    const artifactAccess: PolicyStatement[] = [
      { actions: ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"], resources: [`${artifacts.arn}/*`] },
      { actions: ["s3:GetBucketLocation", "s3:GetBucketVersioning"], resources: [artifacts.arn] },
      { actions: ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"], resources: [key.arn] },
    ];

    // The source action hands CodeBuild a reference (CODEBUILD_CLONE_REF) and
    // CodeBuild clones the repository itself through the connection: every
    // project whose action takes the Source artifact needs to use it.
    const useConnection: PolicyStatement = {
      actions: ["codestar-connections:UseConnection", "codeconnections:UseConnection"],
      resources: [connection.arn],
    };

    const project = (
      name: string,
      spec: string,
      extra: PolicyStatement[],
      env: Record<string, string> = {},
      timeoutMinutes = 60,
    ) => {
      const projectName = `${prefix}-${name}`;
      const role = new IamRole(this, `${name}-role`, {
        name: projectName,
        assumeRolePolicy: assumeRolePolicy("codebuild.amazonaws.com"),
      });
      new IamRolePolicy(this, `${name}-policy`, {
        name: projectName,
        role: role.id,
        policy: policyDocument([
          { actions: ["logs:CreateLogStream", "logs:PutLogEvents"], resources: [`${logGroup.arn}:*`] },
          ...artifactAccess,
          // The S3 cache lives in the artifacts bucket: CodeBuild also reads
          // the bucket's identity, as in the service role policy AWS
          // documents (https://docs.aws.amazon.com/codebuild/latest/userguide/setting-up-service-role.html).
          { actions: ["s3:GetBucketAcl"], resources: [artifacts.arn] },
          ...extra,
        ]),
      });
      return new CodebuildProject(this, name, {
        name: projectName,
        serviceRole: role.arn,
        encryptionKey: key.arn,
        buildTimeout: timeoutMinutes,
        source: { type: "CODEPIPELINE", buildspec: spec },
        artifacts: { type: "CODEPIPELINE" },
        // The buildspec's cache.paths, kept in the artifacts bucket (KMS,
        // expiring) under one prefix per project.
        cache: { type: "S3", location: `${artifacts.bucket.bucket}/cache/${name}` },
        environment: {
          computeType: BUILD_COMPUTE_TYPE,
          image: "aws/codebuild/amazonlinux-x86_64-standard:5.0",
          type: "LINUX_CONTAINER",
          privilegedMode: false,
          environmentVariable: Object.entries(env).map(([k, value]) => ({ name: k, value })),
        },
        logsConfig: { cloudwatchLogs: { groupName: logGroup.name, streamName: name } },
      });
    };

    // The regions come from the checkout's cdktf/regions.json, as for `just deploy`.
    const stateEnv: Record<string, string> = {
      JOBS_STATE_BUCKET: config.stateBucket ?? "",
      JOBS_STATE_REGION: config.stateRegion,
      JOBS_STATE_KMS_KEY: config.stateKmsKey ?? "",
      JOBS_RESERVED_CONCURRENCY: config.reservedConcurrency ? "on" : "off",
    };
    const deployer = (stage: string) => `arn:aws:iam::${account.accountId}:role/${deployerRoleName(stage)}`;
    const deployProject = (stage: string, artifactsOut?: { files: string[] }, extraCommands: string[] = []) =>
      project(
        `deploy-${stage}`,
        buildspec([...deployCommands(stage), ...extraCommands], artifactsOut),
        [useConnection, { actions: ["sts:AssumeRole"], resources: [deployer(stage)] }],
        { ...stateEnv, DEPLOY_ROLE_ARN: deployer(stage) },
      );

    const build = project("build", buildspec(["run_just test"]), [useConnection], {}, BUILD_TIMEOUT_MINUTES);
    const deployTest = deployProject(PIPELINE_TEST_STAGE, { files: [`.deploy/${PIPELINE_TEST_STAGE}/outputs.json`] }, [
      // The end-to-end suite signs in as a test user: create or reset it.
      `dev_shell tools/terraform.sh test-user ${PIPELINE_TEST_STAGE}`,
    ]);
    // Runs the end-to-end suite unchanged against the deployed URL, with the
    // dev shell's Python (or, without Nix, a venv from tools/python-tools.lock).
    // The outputs (with the test user) come from the deploy action's
    // artifact; AWS access only through the deployer role of the test stage.
    const e2e = project(
      "e2e",
      buildspec([
        ...ASSUME_DEPLOYER,
        `export JOBS_OUTPUTS="$CODEBUILD_SRC_DIR_TestOutputs/.deploy/${PIPELINE_TEST_STAGE}/outputs.json"`,
        "if command -v nix >/dev/null; then nix develop --command python3 -m pytest tests/e2e; else " +
          "python3 -m venv /tmp/e2e && /tmp/e2e/bin/pip install -q -r tools/python-tools.lock && /tmp/e2e/bin/python -m pytest tests/e2e; fi",
      ]),
      [useConnection, { actions: ["sts:AssumeRole"], resources: [deployer(PIPELINE_TEST_STAGE)] }],
      { DEPLOY_ROLE_ARN: deployer(PIPELINE_TEST_STAGE) },
    );
    const deployProd = deployProject(PIPELINE_PROD_STAGE);
    const projects = [build, deployTest, e2e, deployProd];

    const pipelineRole = new IamRole(this, "pipeline-role", {
      name: prefix,
      assumeRolePolicy: assumeRolePolicy("codepipeline.amazonaws.com"),
    });
    new IamRolePolicy(this, "pipeline-policy", {
      name: prefix,
      role: pipelineRole.id,
      policy: policyDocument([
        ...artifactAccess,
        useConnection,
        { actions: ["codebuild:StartBuild", "codebuild:BatchGetBuilds"], resources: projects.map((p) => p.arn) },
      ]),
    });

    const codebuild = (name: string, projectName: string, input: string[], output: string[] = []) => ({
      name,
      category: "Build",
      owner: "AWS",
      provider: "CodeBuild",
      version: "1",
      inputArtifacts: input,
      outputArtifacts: output,
      // The first input is the primary source; others appear as $CODEBUILD_SRC_DIR_<name>.
      configuration: { ProjectName: projectName, PrimarySource: input[0] },
    });

    new Codepipeline(this, "pipeline", {
      name: prefix,
      pipelineType: "V2",
      roleArn: pipelineRole.arn,
      artifactStore: [
        { location: artifacts.bucket.bucket, type: "S3", encryptionKey: { id: key.arn, type: "KMS" } },
      ],
      stage: [
        {
          name: "Source",
          action: [
            {
              name: "GitHub",
              category: "Source",
              owner: "AWS",
              provider: "CodeStarSourceConnection",
              version: "1",
              outputArtifacts: ["Source"],
              configuration: {
                ConnectionArn: connection.arn,
                FullRepositoryId: repository.stringValue,
                BranchName: branch.stringValue,
                // A full clone, made by CodeBuild through the connection: the
                // build needs the git metadata (tools/verify-reproducible.py
                // runs `git ls-files`; the flake is evaluated from git).
                OutputArtifactFormat: "CODEBUILD_CLONE_REF",
              },
            },
          ],
        },
        { name: "BuildAndTest", action: [codebuild("BuildAndTest", build.name, ["Source"])] },
        {
          name: `Deploy-${PIPELINE_TEST_STAGE}`,
          action: [codebuild("Deploy", deployTest.name, ["Source"], ["TestOutputs"])],
        },
        { name: "EndToEnd", action: [codebuild("EndToEnd", e2e.name, ["Source", "TestOutputs"])] },
        {
          name: "Approve",
          action: [{ name: "Approve", category: "Approval", owner: "AWS", provider: "Manual", version: "1" }],
        },
        { name: `Deploy-${PIPELINE_PROD_STAGE}`, action: [codebuild("Deploy", deployProd.name, ["Source"])] },
      ],
    });

    new TerraformOutput(this, "connectionArn", {
      value: connection.arn,
      description: "Authorize this CodeStar connection once in the console (Developer Tools > Connections)",
    });
    new TerraformOutput(this, "artifactsBucket", { value: artifacts.bucket.bucket });
  }
}
