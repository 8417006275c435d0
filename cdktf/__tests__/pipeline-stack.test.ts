// The delivery pipeline and the Terraform state bootstrap stack.
import { NIX_INSTALLER_URL } from "../stacks/pipeline-stack";
import {
  Block,
  ref,
  referencedName,
  resourcesOf,
  statementsOfRole,
  SynthesizedStack,
  synthAllStacks,
  theResource,
  writeFixtureZips,
} from "./support";

let pipelineStack: SynthesizedStack;
let pipeline: Block;

beforeAll(() => {
  const stacks = synthAllStacks({ JOBS_LAMBDA_ZIP_DIR: writeFixtureZips(), JOBS_STATE_BUCKET: "acme-jobs-tfstate" });
  pipelineStack = stacks.pipeline;
  [, pipeline] = theResource(pipelineStack.json, "aws_codepipeline");
});

/** The CodeBuild project an action runs. */
function projectOf(action: Block): Block {
  const name = referencedName(action.configuration.ProjectName, "aws_codebuild_project");
  return pipelineStack.json.resource!.aws_codebuild_project[name];
}

test("stages: GitHub source, build and test, deploy test, end-to-end, approval, deploy prod", () => {
  expect(pipeline.stage.map((s: Block) => s.name)).toEqual([
    "Source",
    "BuildAndTest",
    "Deploy-test",
    "EndToEnd",
    "Approve",
    "Deploy-prod",
  ]);
  const [source] = pipeline.stage[0].action;
  const [connectionName] = theResource(pipelineStack.json, "aws_codestarconnections_connection");
  expect(source).toMatchObject({ provider: "CodeStarSourceConnection", category: "Source" });
  expect(source.configuration.ConnectionArn).toBe(ref("aws_codestarconnections_connection", connectionName, "arn"));
  expect(pipelineStack.json.resource!.aws_codestarconnections_connection[connectionName].provider_type).toBe("GitHub");
  expect(pipeline.stage[4].action[0]).toMatchObject({ category: "Approval", provider: "Manual" });
});

test("build runs the test suite; deploys apply cognito then app to their stage; e2e reads the test stage's outputs", () => {
  const spec = (stage: number): string => projectOf(pipeline.stage[stage].action[0]).source.buildspec;
  expect(spec(1)).toContain("run_just test");
  expect(spec(1)).toContain("nix develop --command just");
  expect(spec(2)).toContain("tools/terraform.sh apply test cognito app");
  expect(spec(5)).toContain("tools/terraform.sh apply prod cognito app");
  expect(spec(3)).toContain("JOBS_OUTPUTS=");
  expect(spec(3)).toContain("pytest tests/e2e");
  // The deploy action hands its outputs file to the end-to-end action.
  expect(pipeline.stage[2].action[0].output_artifacts).toEqual(["TestOutputs"]);
  expect(pipeline.stage[3].action[0].input_artifacts).toEqual(["Source", "TestOutputs"]);
});

test("deploy projects use the S3 state backend of the configuration", () => {
  const env = (stage: number) =>
    Object.fromEntries(
      projectOf(pipeline.stage[stage].action[0]).environment.environment_variable.map((v: Block) => [v.name, v.value]),
    );
  for (const stage of [2, 5]) expect(env(stage).JOBS_STATE_BUCKET).toBe("acme-jobs-tfstate");
});

test("artifacts are encrypted with the pipeline's key and the bucket is removable", () => {
  const [keyName] = theResource(pipelineStack.json, "aws_kms_key");
  const [store] = pipeline.artifact_store;
  expect(store.encryption_key).toEqual({ id: ref("aws_kms_key", keyName, "arn"), type: "KMS" });
  const bucketName = referencedName(store.location, "aws_s3_bucket");
  expect(pipelineStack.json.resource!.aws_s3_bucket[bucketName].force_destroy).toBe(true);
  for (const [, project] of resourcesOf(pipelineStack.json, "aws_codebuild_project")) {
    expect(project.encryption_key).toBe(ref("aws_kms_key", keyName, "arn"));
    expect(project.environment.privileged_mode).toBe(false);
  }
});

/** Every CodeBuild action of the pipeline, with its project. */
function codebuildActions(): { action: Block; project: Block; roleName: string }[] {
  return pipeline.stage
    .flatMap((s: Block) => s.action)
    .filter((a: Block) => a.provider === "CodeBuild")
    .map((action: Block) => {
      const project = projectOf(action);
      return { action, project, roleName: referencedName(project.service_role, "aws_iam_role") };
    });
}

describe("the source is a full git clone", () => {
  test("the source action hands CodeBuild a clone reference, not a zip without .git", () => {
    const [source] = pipeline.stage[0].action;
    expect(source.output_artifacts).toEqual(["Source"]);
    expect(source.configuration.OutputArtifactFormat).toBe("CODEBUILD_CLONE_REF");
  });

  test("exactly the pipeline role and the roles of projects taking the Source artifact may use the connection", () => {
    const [connectionName] = theResource(pipelineStack.json, "aws_codestarconnections_connection");
    const connection = ref("aws_codestarconnections_connection", connectionName, "arn");
    const [pipelineRoleName] = theResource(pipelineStack.json, "aws_iam_role", (r) => r.name === "jobs-pipeline");
    expect(pipeline.role_arn).toBe(ref("aws_iam_role", pipelineRoleName, "arn"));
    const takingSource = codebuildActions()
      .filter(({ action }) => action.input_artifacts.includes("Source"))
      .map(({ roleName }) => roleName);
    expect(takingSource.length).toBe(4);

    const useConnection = ["codestar-connections:UseConnection", "codeconnections:UseConnection"];
    const granted = resourcesOf(pipelineStack.json, "aws_iam_role")
      .map(([name]) => name)
      .filter((role) => statementsOfRole(pipelineStack.json, role).some((s) => s.Action.some((a) => useConnection.includes(a))));
    expect(granted.sort()).toEqual([...new Set([pipelineRoleName, ...takingSource])].sort());
    for (const role of granted) {
      const statements = statementsOfRole(pipelineStack.json, role).filter((s) => s.Action.some((a) => useConnection.includes(a)));
      expect(statements).toEqual([{ Effect: "Allow", Action: useConnection, Resource: [connection] }]);
    }
  });
});

describe("every CodeBuild project builds in the flake's dev shell", () => {
  const NIX_PROFILE = "/nix/var/nix/profiles/default/etc/profile.d/nix-daemon.sh";
  const specs = () => codebuildActions().map(({ project }) => JSON.parse(project.source.buildspec));

  test("the image lacks Nix, so the install phase installs it with the pinned Determinate installer", () => {
    expect(NIX_INSTALLER_URL).toMatch(/^https:\/\/install\.determinate\.systems\/nix\/tag\/v\d+\.\d+\.\d+$/);
    for (const [, project] of resourcesOf(pipelineStack.json, "aws_codebuild_project")) {
      expect(project.environment.image).toBe("aws/codebuild/amazonlinux-x86_64-standard:5.0");
    }
    for (const spec of specs()) {
      const install: string[] = spec.phases.install.commands;
      const installer = install.find((c) => c.includes("install.determinate.systems"))!;
      expect(installer).toContain(`curl --proto '=https' --tlsv1.2 -sSf -L ${NIX_INSTALLER_URL} | sh -s -- install linux --init none --no-confirm`);
      // A failed download fails the install (no `sh` of an empty script).
      expect(installer).toContain("set -o pipefail");
      expect(install).toContain(`if [ -e ${NIX_PROFILE} ]; then . ${NIX_PROFILE}; fi`);
      expect(install[install.length - 1]).toBe("nix --version");
      // No unpinned installer anywhere.
      expect(JSON.stringify(spec)).not.toMatch(/install\.determinate\.systems\/nix[ |'"]/);
    }
  });

  test("recipes run as `nix develop --command just ...`, with the README's ./just where Nix is absent", () => {
    for (const spec of specs()) {
      const build: string[] = spec.phases.build.commands;
      const runJust = build.find((c) => c.startsWith("run_just() {"))!;
      expect(runJust).toMatch(/^run_just\(\) \{ if command -v nix >\/dev\/null; then nix develop --command just "\$@"; else .*\.\/just "\$@"; fi; \}$/);
      // The profile is sourced in the phase that runs the commands.
      expect(build[0]).toBe(`if [ -e ${NIX_PROFILE} ]; then . ${NIX_PROFILE}; fi`);
    }
  });

  test("build runs `just test`; deploys build, synthesize and apply with the dev shell's tofu; e2e uses its Python", () => {
    const spec = (stage: number): string[] => JSON.parse(projectOf(pipeline.stage[stage].action[0]).source.buildspec).phases.build.commands;
    expect(spec(1)).toContain("run_just test");
    for (const [stage, name] of [[2, "test"], [5, "prod"]] as const) {
      expect(spec(stage)).toEqual(
        expect.arrayContaining([
          `dev_shell tools/terraform.sh preflight deploy ${name}`,
          "run_just build arm64",
          `run_just synth arm64 ${name}`,
          `dev_shell tools/terraform.sh apply ${name} cognito app`,
        ]),
      );
    }
    expect(spec(2)).toContain("dev_shell tools/terraform.sh test-user test");
    // tofu is only in the dev shell: tools/terraform.sh never runs outside it.
    for (const stage of [1, 2, 3, 5]) {
      for (const command of spec(stage)) {
        if (command.includes("tools/terraform.sh")) expect(command).toMatch(/^dev_shell tools\/terraform\.sh /);
      }
    }
    expect(spec(3).join("\n")).toContain("nix develop --command python3 -m pytest tests/e2e");
  });

  test("deploys take the regions from the checkout's cdktf/regions.json, not from the pipeline's synthesis", () => {
    for (const { project } of codebuildActions()) {
      const names = (project.environment.environment_variable ?? []).map((v: Block) => v.name);
      expect(names).not.toContain("JOBS_REGIONS");
      expect(names).not.toContain("JOBS_REGION");
    }
  });
});

test("least privilege: build has no AWS access, deploys may only assume their stage's deployer role", () => {
  const grants = (stage: number) => {
    const project = projectOf(pipeline.stage[stage].action[0]);
    const role = referencedName(project.service_role, "aws_iam_role");
    return resourcesOf(pipelineStack.json, "aws_iam_role_policy")
      .filter(([, p]) => p.role === ref("aws_iam_role", role, "id"))
      .flatMap(([, p]) => JSON.parse(p.policy).Statement)
      .filter((s: Block) => !s.Action.some((a: string) => /^(logs|s3|kms|codestar-connections|codeconnections):/.test(a)));
  };
  // Besides logs, artifacts and cloning through the connection (tested above):
  expect(grants(1)).toEqual([]);
  expect(grants(2)).toEqual([
    expect.objectContaining({ Action: ["sts:AssumeRole"], Resource: [expect.stringMatching(/:role\/jobs-test-deployer$/)] }),
  ]);
  expect(grants(3)).toEqual([
    expect.objectContaining({ Action: ["sts:AssumeRole"], Resource: [expect.stringMatching(/:role\/jobs-test-deployer$/)] }),
  ]);
  expect(grants(5)).toEqual([
    expect.objectContaining({ Action: ["sts:AssumeRole"], Resource: [expect.stringMatching(/:role\/jobs-prod-deployer$/)] }),
  ]);
});

describe("Terraform state", () => {
  test("with JOBS_STATE_BUCKET every deployed stack keeps its state in S3, one key per stage and stack, locked", () => {
    const stacks = synthAllStacks({ JOBS_LAMBDA_ZIP_DIR: writeFixtureZips(), JOBS_STATE_BUCKET: "acme-jobs-tfstate" });
    for (const name of ["cognito", "app", "pipeline"]) {
      expect(stacks[name].json.terraform!.backend).toEqual({
        s3: {
          bucket: "acme-jobs-tfstate",
          key: `jobs/dev/${name}.tfstate`,
          region: "us-east-1",
          encrypt: true,
          use_lockfile: true,
        },
      });
    }
    // The app stack reads the cognito outputs from the same backend.
    const remote = (stacks.app.json as Block).data.terraform_remote_state["cross-stack-reference-input-cognito"];
    expect(remote.backend).toBe("s3");
    expect(remote.config).toMatchObject({ bucket: "acme-jobs-tfstate", key: "jobs/dev/cognito.tfstate" });
  });

  test("the state bucket is versioned, encrypted with its own key, and not destroyed with a stage", () => {
    const stacks = synthAllStacks({ JOBS_LAMBDA_ZIP_DIR: writeFixtureZips(), JOBS_STATE_BUCKET: "acme-jobs-tfstate" });
    const state = stacks.state.json;
    const [bucketName, bucket] = theResource(state, "aws_s3_bucket", (b) => b.bucket === "acme-jobs-tfstate");
    expect(bucket.force_destroy).toBe(false);
    const id = ref("aws_s3_bucket", bucketName, "id");
    expect(theResource(state, "aws_s3_bucket_versioning", (b) => b.bucket === id)[1].versioning_configuration).toEqual({
      status: "Enabled",
    });
    const [, lifecycle] = theResource(state, "aws_s3_bucket_lifecycle_configuration", (b) => b.bucket === id);
    // State never expires; only old versions do.
    expect(lifecycle.rule[0].expiration).toBeUndefined();
    expect(lifecycle.rule[0].noncurrent_version_expiration).toEqual([{ noncurrent_days: 90 }]);
  });

  test("API Gateway may write CloudWatch logs in every region of the configuration", () => {
    const stacks = synthAllStacks({ JOBS_LAMBDA_ZIP_DIR: writeFixtureZips(), JOBS_REGIONS: "us-east-1,eu-west-1" });
    const state = stacks.state.json;
    const [roleName, role] = theResource(state, "aws_iam_role");
    expect(JSON.parse(role.assume_role_policy).Statement[0].Principal).toEqual({ Service: "apigateway.amazonaws.com" });
    const accounts = resourcesOf(state, "aws_api_gateway_account").map(([, a]) => a);
    expect(accounts).toHaveLength(2);
    for (const account of accounts) expect(account.cloudwatch_role_arn).toBe(ref("aws_iam_role", roleName, "arn"));
    // One in the default provider's region, one through the eu-west-1 provider.
    expect(accounts.map((a) => a.provider ?? "default").sort()).toEqual(["aws.eu-west-1", "default"]);
    // The role writes the stages' access log groups in exactly those regions (no region wildcard),
    // and nothing else.
    const [statement] = statementsOfRole(state, roleName);
    const account = "${data.aws_caller_identity.current-account.account_id}";
    expect(statement.Resource).toEqual(
      ["us-east-1", "eu-west-1"].flatMap((region) => {
        const group = `arn:aws:logs:${region}:${account}:log-group:/aws/apigateway/jobs-*-api`;
        return [group, `${group}:*`];
      }),
    );
    // The stages' access log groups match: /aws/apigateway/<api name>.
    const app = stacks.app.json;
    const [, api] = theResource(app, "aws_api_gateway_rest_api");
    const accessLogs = resourcesOf(app, "aws_cloudwatch_log_group").map(([, g]) => g.name).filter((n) => n.startsWith("/aws/apigateway/"));
    expect(accessLogs).toEqual([`/aws/apigateway/${api.name}`]);
    expect(accessLogs[0]).toMatch(/^\/aws\/apigateway\/jobs-.*-api$/);
  });
});
