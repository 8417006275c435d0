import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Testing } from "cdktn";
import { ConfigError, loadConfig, REPO_ROOT } from "../config";
import { defineStacks } from "../main";
import { CONTRACT_FUNCTIONS, lambdaFor, resourcesOf, synthStacks, writeFixtureZips } from "./support";

const CDKTF_DIR = path.join(REPO_ROOT, "cdktf");

/** Runs `npm run synth`'s command with `env` added to a clean JOBS_* environment. */
function runMain(env: Record<string, string>) {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("JOBS_")));
  return spawnSync(process.execPath, ["-r", "ts-node/register/transpile-only", "main.ts"], {
    cwd: CDKTF_DIR,
    env: { ...inherited, CHECKPOINT_DISABLE: "1", ...env },
    encoding: "utf8",
  });
}

describe("loadConfig", () => {
  test("defaults: stage dev in us-east-1, arm64 zips from the repository's target dir", () => {
    expect(loadConfig({})).toEqual({
      stage: "dev",
      namePrefix: "jobs-dev",
      region: "us-east-1",
      lambdaArchitecture: "arm64",
      regions: ["us-east-1"],
      lambdaZipDir: path.join(REPO_ROOT, "target", "lambda", "arm64"),
      deletionProtection: false,
      resultsExpirationDays: 30,
      stateRegion: "us-east-1",
    });
  });

  test("JOBS_LAMBDA_ARCH also picks the default zip directory", () => {
    const config = loadConfig({ JOBS_LAMBDA_ARCH: "x86_64" });
    expect(config.lambdaArchitecture).toBe("x86_64");
    expect(config.lambdaZipDir).toBe(path.join(REPO_ROOT, "target", "lambda", "x86_64"));
  });

  test("JOBS_LAMBDA_ZIP_DIR overrides the zip directory", () => {
    expect(loadConfig({ JOBS_LAMBDA_ZIP_DIR: "/tmp/zips" }).lambdaZipDir).toBe("/tmp/zips");
  });

  test("only the prod stage protects stateful resources", () => {
    expect(loadConfig({ JOBS_STAGE: "prod" }).deletionProtection).toBe(true);
    expect(loadConfig({ JOBS_STAGE: "staging" }).deletionProtection).toBe(false);
  });

  test.each([
    ["JOBS_STAGE", "Dev"],
    ["JOBS_STAGE", "a-very-long-stage-name-x"],
    ["JOBS_REGION", "useast1"],
    ["JOBS_LAMBDA_ARCH", "aarch64"],
    ["JOBS_REGIONS", "us-east-1,moon-1"],
    ["JOBS_REGIONS", "us-east-1,us-east-1"],
    ["JOBS_RESULTS_EXPIRATION_DAYS", "0"],
    ["JOBS_STATE_BUCKET", "Not_A_Bucket"],
  ])("rejects %s=%s, naming the variable", (variable, value) => {
    expect(() => loadConfig({ [variable]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [variable]: value })).toThrow(`${variable}="${value}"`);
  });
});

describe("synthesis follows the configuration", () => {
  test.each(["arm64", "x86_64"])("JOBS_LAMBDA_ARCH=%s sets every function's architecture", (arch) => {
    const { app } = synthStacks({ JOBS_LAMBDA_ARCH: arch, JOBS_LAMBDA_ZIP_DIR: writeFixtureZips() });
    for (const fn of CONTRACT_FUNCTIONS) expect(lambdaFor(app.json, fn)[1].architectures).toEqual([arch]);
  });

  test("JOBS_STAGE prefixes every resource name", () => {
    const { app, cognito } = synthStacks({ JOBS_STAGE: "qa", JOBS_LAMBDA_ZIP_DIR: writeFixtureZips() });
    // Names inside the REST API (its model and validator) are not account-wide.
    const insideApi = new Set(["aws_api_gateway_model", "aws_api_gateway_request_validator"]);
    const names = [app, cognito].flatMap(({ json }) =>
      Object.keys(json.resource!).filter((type) => !insideApi.has(type)).flatMap((type) =>
        resourcesOf(json, type).flatMap(([, block]) =>
          ["name", "function_name", "bucket"]
            .filter((field) => typeof block[field] === "string" && !block[field].startsWith("${"))
            .map((field) => block[field] as string),
        ),
      ),
    );
    expect(names.length).toBeGreaterThan(10);
    for (const name of names) {
      expect(name.replace(/^(\/aws\/(lambda|apigateway)\/|alias\/)/, "")).toMatch(/^jobs-qa(-|$)/);
    }
  });

  test("JOBS_REGION sets both stacks' provider region and the Cognito issuer", () => {
    const { app, cognito } = synthStacks({ JOBS_REGION: "eu-west-1", JOBS_LAMBDA_ZIP_DIR: writeFixtureZips() });
    const providerRegions = [app, cognito].map(({ json }) => (json as { provider: { aws: { region: string }[] } }).provider.aws[0].region);
    expect(providerRegions).toEqual(["eu-west-1", "eu-west-1"]);
    expect(lambdaFor(app.json, "authorizer")[1].environment.variables.COGNITO_ISSUER).toMatch(
      /^https:\/\/cognito-idp\.eu-west-1\.amazonaws\.com\//,
    );
    expect(JSON.stringify(app.json)).not.toContain("us-east-1");
  });
});

describe("a missing function zip", () => {
  const emptyDir = fs.mkdtempSync(path.join(os.tmpdir(), "jobs-no-zips-"));
  const missing = path.join(emptyDir, "authorizer", "bootstrap.zip");

  test("fails the synth with one sentence naming the file and the build command", () => {
    const build = () => defineStacks(Testing.app(), loadConfig({ JOBS_LAMBDA_ZIP_DIR: emptyDir }));
    expect(build).toThrow(ConfigError);
    expect(build).toThrow(`The Lambda package ${missing} does not exist: build it with \`just build\`.`);
  });

  test("main.ts prints just that sentence and exits 1", () => {
    const result = runMain({ JOBS_LAMBDA_ZIP_DIR: emptyDir, CDKTF_OUTDIR: path.join(emptyDir, "out") });
    expect(result.status).toBe(1);
    expect(result.stderr.trim().split("\n")).toEqual([
      `error: The Lambda package ${missing} does not exist: build it with \`just build\`.`,
    ]);
  });
});

test("main.ts synthesizes both stacks, with each zip beside the app stack's JSON", () => {
  const zipDir = writeFixtureZips();
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), "jobs-cdktf-out-"));
  const result = runMain({ JOBS_LAMBDA_ZIP_DIR: zipDir, JOBS_LAMBDA_ARCH: "x86_64", CDKTF_OUTDIR: outdir });
  expect(result.stderr).toBe("");
  expect(result.status).toBe(0);

  expect(fs.existsSync(path.join(outdir, "stacks", "cognito", "cdk.tf.json"))).toBe(true);
  const stackDir = path.join(outdir, "stacks", "app");
  const app = JSON.parse(fs.readFileSync(path.join(stackDir, "cdk.tf.json"), "utf8"));
  for (const fn of CONTRACT_FUNCTIONS) {
    const [, lambda] = lambdaFor(app, fn);
    expect(lambda.architectures).toEqual(["x86_64"]);
    // The local target reads `filename` relative to the stack directory.
    const copied = fs.readFileSync(path.join(stackDir, lambda.filename));
    expect(copied.equals(fs.readFileSync(path.join(zipDir, fn, "bootstrap.zip")))).toBe(true);
  }
});
