// The delivery pipeline and the Terraform state bootstrap stack.
import {
  BUILD_COMPUTE_TYPE,
  BUILD_TIME_BUDGET_MINUTES,
  BUILD_TIMEOUT_MINUTES,
  CACHE_PATHS,
  NIX_BINARY_CACHE,
  NIX_INSTALLER_URL,
} from "../stacks/pipeline-stack";
import { API_GATEWAY_CLOUDWATCH_ACTIONS } from "../stacks/state-stack";
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

const STATE_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
/** A deployment's state settings, as `just bootstrap-state` prints them. */
const STATE = { JOBS_STATE_BUCKET: "acme-jobs-tfstate", JOBS_STATE_KMS_KEY: STATE_KEY };

beforeAll(() => {
  const stacks = synthAllStacks({ JOBS_LAMBDA_ZIP_DIR: writeFixtureZips(), ...STATE });
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

test("deploy projects use the S3 state backend, its key and the reservations setting of the configuration", () => {
  const env = (stage: number) =>
    Object.fromEntries(
      projectOf(pipeline.stage[stage].action[0]).environment.environment_variable.map((v: Block) => [v.name, v.value]),
    );
  for (const stage of [2, 5]) {
    expect(env(stage)).toMatchObject({
      JOBS_STATE_BUCKET: "acme-jobs-tfstate",
      JOBS_STATE_KMS_KEY: STATE_KEY,
      JOBS_RESERVED_CONCURRENCY: "on",
    });
  }
  const off = synthAllStacks({ JOBS_LAMBDA_ZIP_DIR: writeFixtureZips(), ...STATE, JOBS_RESERVED_CONCURRENCY: "off" }).pipeline.json;
  const deploys = resourcesOf(off, "aws_codebuild_project").filter(([, p]) => /deploy-/.test(p.name));
  expect(deploys).toHaveLength(2);
  for (const [, p] of deploys) {
    expect(p.environment.environment_variable).toContainEqual({ name: "JOBS_RESERVED_CONCURRENCY", value: "off" });
  }
});

describe("BuildAndTest fits its time limit (issue: 60 minutes and no cache)", () => {
  const buildProject = () => projectOf(pipeline.stage[1].action[0]);

  test("its timeout is sized from the suite's measured duration, with the Nix install and a clean rebuild on top, doubled", () => {
    // CI, 2 cores, `./just test` on a clean clone: 1671 s and 1700 s.
    expect(BUILD_TIME_BUDGET_MINUTES.suite).toBeGreaterThanOrEqual(Math.max(1671, 1700) / 60);
    expect(BUILD_TIME_BUDGET_MINUTES.nixInstallAndDevShell).toBeGreaterThan(0);
    expect(BUILD_TIME_BUDGET_MINUTES.cleanRebuild).toBeGreaterThan(0);
    const estimate = Object.values(BUILD_TIME_BUDGET_MINUTES).reduce((a, b) => a + b, 0);
    expect(buildProject().build_timeout).toBe(BUILD_TIMEOUT_MINUTES);
    expect(BUILD_TIMEOUT_MINUTES).toBeGreaterThanOrEqual(2 * estimate);
    // Within CodeBuild's range for timeoutInMinutes (5 to 2160):
    // https://docs.aws.amazon.com/codebuild/latest/APIReference/API_CreateProject.html
    expect(BUILD_TIMEOUT_MINUTES).toBeGreaterThan(60);
    expect(BUILD_TIMEOUT_MINUTES).toBeLessThanOrEqual(2160);
  });

  test("it runs on 8 vCPUs and 15 GB (BUILD_GENERAL1_LARGE), four times the cores it was measured on", () => {
    // https://docs.aws.amazon.com/codebuild/latest/userguide/build-env-ref-compute-types.html
    expect(BUILD_COMPUTE_TYPE).toBe("BUILD_GENERAL1_LARGE");
    expect(buildProject().environment).toMatchObject({ compute_type: "BUILD_GENERAL1_LARGE", type: "LINUX_CONTAINER" });
  });

  test("every project caches Cargo, npm and the Nix store in S3, in the artifacts bucket, one prefix each", () => {
    const bucket = referencedName(pipeline.artifact_store[0].location, "aws_s3_bucket");
    const names = new Set<string>();
    for (const { project } of codebuildActions()) {
      expect(project.cache).toEqual({ type: "S3", location: `${ref("aws_s3_bucket", bucket, "bucket")}/cache/${project.name.replace(/^jobs-pipeline-/, "")}` });
      names.add(project.cache.location);
      // https://docs.aws.amazon.com/codebuild/latest/userguide/build-spec-ref.html#build-spec.cache
      expect(JSON.parse(project.source.buildspec).cache.paths).toEqual(CACHE_PATHS);
    }
    expect(names.size).toBe(4);
    expect(CACHE_PATHS).toEqual(
      expect.arrayContaining(["/root/.cargo/registry/**/*", "/root/.cargo/git/**/*", "/root/.npm/**/*", `${NIX_BINARY_CACHE}/**/*`]),
    );
  });

  test("the Nix store is cached as a binary cache: loaded after the install, saved in post_build", () => {
    for (const { project } of codebuildActions()) {
      const spec = JSON.parse(project.source.buildspec);
      const install: string[] = spec.phases.install.commands;
      const restore = install.findIndex((c) => c.includes(`nix copy --no-check-sigs --from file://${NIX_BINARY_CACHE}`));
      // After Nix is installed and on PATH, and a cache that does not load does not fail the build.
      expect(restore).toBeGreaterThan(install.findIndex((c) => c.includes("install.determinate.systems")));
      expect(restore).toBeGreaterThan(install.indexOf("nix --version"));
      expect(install[restore]).toMatch(/\|\| echo "[^"]+"; fi$/);
      const save: string = spec.phases.post_build.commands.join("\n");
      expect(save).toContain("nix develop --profile");
      expect(save).toContain(`nix copy --to "file://${NIX_BINARY_CACHE}?compression=zstd"`);
    }
  });

  test("the project roles may read and write the cache prefix (and only the artifacts bucket)", () => {
    const bucket = referencedName(pipeline.artifact_store[0].location, "aws_s3_bucket");
    for (const { roleName } of codebuildActions()) {
      const s3 = statementsOfRole(pipelineStack.json, roleName).filter((s) => s.Action.some((a) => a.startsWith("s3:")));
      expect(s3).toContainEqual(
        expect.objectContaining({ Action: expect.arrayContaining(["s3:GetObject", "s3:PutObject"]), Resource: [`${ref("aws_s3_bucket", bucket, "arn")}/*`] }),
      );
      for (const statement of s3) {
        for (const resource of statement.Resource) expect(resource.startsWith(ref("aws_s3_bucket", bucket, "arn"))).toBe(true);
      }
    }
  });
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
      // The install phase fails when Nix is not there after it.
      expect(install.indexOf("nix --version")).toBeGreaterThan(install.indexOf(installer));
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
  test("with JOBS_STATE_BUCKET every deployed stack keeps its state in S3, one key per stage and stack, locked, encrypted with the state key", () => {
    const stacks = synthAllStacks({ JOBS_LAMBDA_ZIP_DIR: writeFixtureZips(), ...STATE });
    for (const name of ["cognito", "app", "pipeline"]) {
      expect(stacks[name].json.terraform!.backend).toEqual({
        s3: {
          bucket: "acme-jobs-tfstate",
          key: `jobs/dev/${name}.tfstate`,
          region: "us-east-1",
          // `encrypt` without `kms_key_id` would make Terraform/OpenTofu ask S3
          // for AES256, overriding the bucket's KMS default:
          // https://developer.hashicorp.com/terraform/language/backend/s3
          encrypt: true,
          kms_key_id: STATE_KEY,
          use_lockfile: true,
        },
      });
    }
    // The app stack reads the cognito outputs from the same backend.
    const remote = (stacks.app.json as Block).data.terraform_remote_state["cross-stack-reference-input-cognito"];
    expect(remote.backend).toBe("s3");
    expect(remote.config).toMatchObject({ bucket: "acme-jobs-tfstate", key: "jobs/dev/cognito.tfstate" });
  });

  test("the state key is the state stack's own key, printed by bootstrap-state as stateKmsKey", () => {
    const state = synthAllStacks({ JOBS_LAMBDA_ZIP_DIR: writeFixtureZips(), ...STATE }).state.json;
    const [keyName] = theResource(state, "aws_kms_key");
    expect(state.output!.stateKmsKey.value).toBe(ref("aws_kms_key", keyName, "arn"));
    const [, bucket] = theResource(state, "aws_s3_bucket", (b) => b.bucket === "acme-jobs-tfstate");
    const [, encryption] = theResource(state, "aws_s3_bucket_server_side_encryption_configuration", (c) =>
      c.bucket.startsWith("${aws_s3_bucket.state_bucket"),
    );
    expect(bucket).toBeDefined();
    expect(encryption.rule[0].apply_server_side_encryption_by_default.kms_master_key_id).toBe(ref("aws_kms_key", keyName, "arn"));
  });

  test("a state bucket without its key, or a key without the bucket or in another region, stops the synthesis", () => {
    const zips = writeFixtureZips();
    expect(() => synthAllStacks({ JOBS_LAMBDA_ZIP_DIR: zips, JOBS_STATE_BUCKET: "acme-jobs-tfstate" })).toThrow(
      "JOBS_STATE_BUCKET is set without JOBS_STATE_KMS_KEY",
    );
    expect(() => synthAllStacks({ JOBS_LAMBDA_ZIP_DIR: zips, JOBS_STATE_KMS_KEY: STATE_KEY })).toThrow("set without JOBS_STATE_BUCKET");
    expect(() => synthAllStacks({ JOBS_LAMBDA_ZIP_DIR: zips, ...STATE, JOBS_STATE_REGION: "eu-west-1" })).toThrow(
      "S3 encrypts only with a key of the bucket's region",
    );
    expect(() => synthAllStacks({ JOBS_LAMBDA_ZIP_DIR: zips, ...STATE, JOBS_STATE_KMS_KEY: "alias/jobs-terraform-state" })).toThrow(
      "is not a KMS key ARN",
    );
  });

  test("the state bucket is versioned, encrypted with its own key, and not destroyed with a stage", () => {
    const stacks = synthAllStacks({ JOBS_LAMBDA_ZIP_DIR: writeFixtureZips(), ...STATE });
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

  test("API Gateway's logging role has the permissions AWS documents for it, in every region of the configuration", () => {
    const stacks = synthAllStacks({ JOBS_LAMBDA_ZIP_DIR: writeFixtureZips(), JOBS_REGIONS: "us-east-1,eu-west-1" });
    const state = stacks.state.json;
    const [roleName, role] = theResource(state, "aws_iam_role");
    expect(JSON.parse(role.assume_role_policy).Statement[0].Principal).toEqual({ Service: "apigateway.amazonaws.com" });
    const accounts = resourcesOf(state, "aws_api_gateway_account").map(([, a]) => a);
    expect(accounts).toHaveLength(2);
    for (const account of accounts) expect(account.cloudwatch_role_arn).toBe(ref("aws_iam_role", roleName, "arn"));
    // One in the default provider's region, one through the eu-west-1 provider.
    expect(accounts.map((a) => a.provider ?? "default").sort()).toEqual(["aws.eu-west-1", "default"]);
    // The actions of AmazonAPIGatewayPushToCloudWatchLogs, the policy API Gateway's documentation names:
    // https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html
    // https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonAPIGatewayPushToCloudWatchLogs.html
    const [statement, ...more] = statementsOfRole(state, roleName);
    expect(more).toEqual([]);
    expect([...statement.Action].sort()).toEqual(
      [
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:DescribeLogGroups",
        "logs:DescribeLogStreams",
        "logs:PutLogEvents",
        "logs:GetLogEvents",
        "logs:FilterLogEvents",
      ].sort(),
    );
    expect([...API_GATEWAY_CLOUDWATCH_ACTIONS].sort()).toEqual([...statement.Action].sort());
    // On every log group of this account in exactly the configured regions (API Gateway's
    // check writes a group of its own choosing, /aws/apigateway/welcome), no region wildcard.
    const account = "${data.aws_caller_identity.current-account.account_id}";
    expect(statement.Resource).toEqual(
      ["us-east-1", "eu-west-1"].flatMap((region) => {
        const groups = `arn:aws:logs:${region}:${account}:log-group:*`;
        return [groups, `${groups}:log-stream:*`];
      }),
    );
    const covers = (pattern: string, arn: string) =>
      new RegExp(`^${pattern.replace(/[.+?^(){}|[\]\\$]/g, "\\$&").replace(/\*/g, ".*")}$`).test(arn);
    for (const region of ["us-east-1", "eu-west-1"]) {
      for (const group of ["/aws/apigateway/welcome", "/aws/apigateway/jobs-dev-api", "API-Gateway-Execution-Logs_abc123/api"]) {
        expect(statement.Resource.some((r) => covers(r, `arn:aws:logs:${region}:${account}:log-group:${group}`))).toBe(true);
      }
    }
    expect(statement.Resource.some((r) => covers(r, `arn:aws:logs:ap-south-1:${account}:log-group:/aws/apigateway/welcome`))).toBe(false);
  });

  test("each account setting is saved only after the role's policy is attached (API Gateway test-writes with it)", () => {
    const state = synthAllStacks({ JOBS_LAMBDA_ZIP_DIR: writeFixtureZips(), JOBS_REGIONS: "us-east-1,eu-west-1" }).state.json;
    const [policyName] = theResource(state, "aws_iam_role_policy");
    for (const [, account] of resourcesOf(state, "aws_api_gateway_account")) {
      expect(account.depends_on).toContain(`aws_iam_role_policy.${policyName}`);
    }
  });
});
