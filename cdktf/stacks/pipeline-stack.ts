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

// Installs the tools, with Nix where the image has it (the flake's dev shell),
// else with the README's `./just` bootstrap (Python, Node and Rust only).
const INSTALL = [
  "curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal",
  'export PATH="$HOME/.cargo/bin:$PATH"',
];
const JUST = 'if command -v nix >/dev/null; then nix develop --command just "$@"; else ./just "$@"; fi';

/** A CodeBuild buildspec running `commands` in the repository's checkout. */
function buildspec(commands: string[], artifacts?: { files: string[] }): string {
  return JSON.stringify({
    version: "0.2",
    env: { shell: "bash" },
    phases: {
      install: { commands: INSTALL },
      build: { commands: [`run_just() { ${JUST}; }`, ...commands] },
    },
    ...(artifacts ? { artifacts: { files: artifacts.files, "discard-paths": "no" } } : {}),
  });
}

/**
 * Deploys `stage`: assumes the stage's deployer role (created by the account
 * administrator, docs/deploy.md) and applies cognito then app with the state
 * in the S3 backend. The pipeline's approval is the confirmation `just deploy`
 * asks for on a terminal, so this calls tools/terraform.sh directly.
 */
function deployCommands(stage: string): string[] {
  return [
    `printf '[profile deployer]\\nrole_arn = %s\\ncredential_source = EcsContainer\\n' "$DEPLOY_ROLE_ARN" > "$HOME/.aws-deployer"`,
    'export AWS_CONFIG_FILE="$HOME/.aws-deployer" AWS_PROFILE=deployer',
    `tools/terraform.sh preflight deploy ${stage}`,
    "run_just build arm64",
    `run_just synth arm64 ${stage}`,
    `tools/terraform.sh apply ${stage} cognito app`,
  ];
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

    const key = new KmsKey(this, "key", {
      alias: prefix,
      description: "Encrypts the pipeline's artifacts and build logs",
      region,
      accountId: account.accountId,
      deletionWindowDays: 7,
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
      name: `/aws/codebuild/${prefix}`,
      retentionInDays: 30,
      kmsKeyId: key.arn,
    });
    skipCheck(logGroup, "CKV_AWS_338", "build logs are kept 30 days by design; the pipeline history keeps the results");

    const artifactAccess: PolicyStatement[] = [
      { actions: ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"], resources: [`${artifacts.arn}/*`] },
      { actions: ["s3:GetBucketLocation", "s3:GetBucketVersioning"], resources: [artifacts.arn] },
      { actions: ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"], resources: [key.arn] },
    ];

    const project = (name: string, spec: string, extra: PolicyStatement[], env: Record<string, string> = {}) => {
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
          ...extra,
        ]),
      });
      return new CodebuildProject(this, name, {
        name: projectName,
        serviceRole: role.arn,
        encryptionKey: key.arn,
        buildTimeout: 60,
        source: { type: "CODEPIPELINE", buildspec: spec },
        artifacts: { type: "CODEPIPELINE" },
        environment: {
          computeType: "BUILD_GENERAL1_LARGE",
          image: "aws/codebuild/amazonlinux-x86_64-standard:5.0",
          type: "LINUX_CONTAINER",
          privilegedMode: false,
          environmentVariable: Object.entries(env).map(([k, value]) => ({ name: k, value })),
        },
        logsConfig: { cloudwatchLogs: { groupName: logGroup.name, streamName: name } },
      });
    };

    const stateEnv: Record<string, string> = {
      JOBS_STATE_BUCKET: config.stateBucket ?? "",
      JOBS_STATE_REGION: config.stateRegion,
      JOBS_REGIONS: config.regions.join(","),
    };
    const deployer = (stage: string) => `arn:aws:iam::${account.accountId}:role/jobs-${stage}-deployer`;
    const deployProject = (stage: string, artifactsOut?: { files: string[] }, extraCommands: string[] = []) =>
      project(
        `deploy-${stage}`,
        buildspec([...deployCommands(stage), ...extraCommands], artifactsOut),
        [{ actions: ["sts:AssumeRole"], resources: [deployer(stage)] }],
        { ...stateEnv, DEPLOY_ROLE_ARN: deployer(stage) },
      );

    const build = project("build", buildspec(["run_just test"]), []);
    const deployTest = deployProject(PIPELINE_TEST_STAGE, { files: [`.deploy/${PIPELINE_TEST_STAGE}/outputs.json`] }, [
      // The end-to-end suite signs in as a test user: create or reset it.
      `tools/terraform.sh test-user ${PIPELINE_TEST_STAGE}`,
    ]);
    // Runs the end-to-end suite unchanged against the deployed URL. The
    // outputs (with the test user) come from the deploy action's artifact;
    // AWS access only through the deployer role of the test stage.
    const e2e = project(
      "e2e",
      JSON.stringify({
        version: "0.2",
        env: { shell: "bash" },
        phases: {
          build: {
            commands: [
              `printf '[profile deployer]\\nrole_arn = %s\\ncredential_source = EcsContainer\\n' "$DEPLOY_ROLE_ARN" > "$HOME/.aws-deployer"`,
              'export AWS_CONFIG_FILE="$HOME/.aws-deployer" AWS_PROFILE=deployer',
              "python3 -m venv /tmp/e2e && /tmp/e2e/bin/pip install -q -r tools/python-tools.lock",
              `JOBS_OUTPUTS="$CODEBUILD_SRC_DIR_TestOutputs/.deploy/${PIPELINE_TEST_STAGE}/outputs.json" /tmp/e2e/bin/python -m pytest tests/e2e`,
            ],
          },
        },
      }),
      [{ actions: ["sts:AssumeRole"], resources: [deployer(PIPELINE_TEST_STAGE)] }],
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
        { actions: ["codestar-connections:UseConnection"], resources: [connection.arn] },
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
                // A full clone: the build needs the git metadata.
                OutputArtifactFormat: "CODE_ZIP",
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
