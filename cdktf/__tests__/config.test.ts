import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Testing } from "cdktn";
import { ConfigError, loadConfig, REGIONS_FILE, REPO_ROOT } from "../config";
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
      reservedConcurrency: true,
      metricsNamespace: "JobIngestion/dev",
    });
  });

  test("JOBS_METRICS_NAMESPACE sets the EMF namespace; the default follows the stage", () => {
    expect(loadConfig({ JOBS_STAGE: "qa" }).metricsNamespace).toBe("JobIngestion/qa");
    expect(loadConfig({ JOBS_METRICS_NAMESPACE: "Acme/Job Ingestion:prod#1" }).metricsNamespace).toBe("Acme/Job Ingestion:prod#1");
  });

  test.each(["AWS/Lambda", "   ", "jobs$dev", "x".repeat(256), "Jobs/${var.x}"])(
    "rejects JOBS_METRICS_NAMESPACE=%s, naming the variable and the rules",
    (value) => {
      const load = () => loadConfig({ JOBS_METRICS_NAMESPACE: value });
      expect(load).toThrow(ConfigError);
      expect(load).toThrow(`JOBS_METRICS_NAMESPACE="${value}" is not a CloudWatch namespace`);
    },
  );

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
    ["JOBS_STATE_KMS_KEY", "alias/jobs-terraform-state"],
    ["JOBS_RESERVED_CONCURRENCY", "yes"],
  ])("rejects %s=%s, naming the variable", (variable, value) => {
    expect(() => loadConfig({ [variable]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [variable]: value })).toThrow(`${variable}="${value}"`);
  });
});

describe("the regions: cdktf/regions.json, overridden by JOBS_REGIONS or JOBS_REGION", () => {
  /** A regions file with `content` in a new directory. */
  function regionsFile(content: string): string {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "jobs-regions-")), "regions.json");
    fs.writeFileSync(file, content);
    return file;
  }

  test("the committed file lists the regions a plain synthesis uses, the primary first", () => {
    expect(REGIONS_FILE).toBe(path.join(CDKTF_DIR, "regions.json"));
    const committed = JSON.parse(fs.readFileSync(REGIONS_FILE, "utf8"));
    expect(committed.regions.length).toBeGreaterThan(0);
    const config = loadConfig({});
    expect(config.regions).toEqual(committed.regions);
    expect(config.region).toBe(committed.regions[0]);
  });

  test("the file decides the regions without any variable", () => {
    const config = loadConfig({}, { regionsFile: regionsFile('{"regions": ["eu-west-1", "us-east-1"]}') });
    expect(config.regions).toEqual(["eu-west-1", "us-east-1"]);
    expect(config.region).toBe("eu-west-1");
    expect(config.stateRegion).toBe("eu-west-1");
  });

  test("JOBS_REGIONS, else JOBS_REGION, overrides the file (which is then not read)", () => {
    const file = regionsFile('{"regions": ["eu-west-1"]}');
    expect(loadConfig({ JOBS_REGIONS: "ap-south-1, us-west-2" }, { regionsFile: file }).regions).toEqual(["ap-south-1", "us-west-2"]);
    expect(loadConfig({ JOBS_REGION: "ca-central-1" }, { regionsFile: file }).regions).toEqual(["ca-central-1"]);
    expect(loadConfig({ JOBS_REGIONS: "us-west-2", JOBS_REGION: "ca-central-1" }, { regionsFile: file }).regions).toEqual(["us-west-2"]);
    expect(loadConfig({ JOBS_REGIONS: "us-west-2" }, { regionsFile: "/nonexistent/regions.json" }).regions).toEqual(["us-west-2"]);
  });

  test.each([
    ["not JSON", '{"regions": ["us-east-1",', "is not valid JSON"],
    ["without a regions list", '{"region": "us-east-1"}', "has no list of regions"],
    ["with an empty list", '{"regions": []}', "has no list of regions"],
    ["with a non-string", '{"regions": ["us-east-1", 3]}', "has no list of regions"],
    ["with a bad region", '{"regions": ["us-east-1", "moon-1"]}', 'lists "moon-1", which is not an AWS region name'],
    ["with a region twice", '{"regions": ["us-east-1", "us-east-1"]}', "lists a region twice"],
  ])("a file %s is refused with one sentence naming the file", (_what, content, why) => {
    const file = regionsFile(content);
    const load = () => loadConfig({}, { regionsFile: file });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(`${file} `);
    expect(load).toThrow(why);
  });

  test("a missing file is refused naming it, relative to the repository when it is in it", () => {
    const missing = path.join(CDKTF_DIR, "no-such-regions.json");
    expect(() => loadConfig({}, { regionsFile: missing })).toThrow(ConfigError);
    expect(() => loadConfig({}, { regionsFile: missing })).toThrow(/^cdktf\/no-such-regions\.json cannot be read \(ENOENT\)/);
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
      // aws-waf-logs-: the prefix WAF requires of the log groups it writes to.
      expect(name.replace(/^(\/aws\/(lambda|apigateway)\/|alias\/|aws-waf-logs-)/, "")).toMatch(/^jobs-qa(-|$)/);
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
