// One app stack per configured region (cdktf/regions.json, or JOBS_REGIONS), the primary named `app`.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { appStackName } from "../main";
import { loadConfig } from "../config";
import { Block, CONTRACT_FUNCTIONS, resourcesOf, SynthesizedStack, synthAllStacks, writeFixtureZips } from "./support";

let stacks: Record<string, SynthesizedStack>;

beforeAll(() => {
  stacks = synthAllStacks({ JOBS_REGIONS: "us-east-1,eu-west-1", JOBS_LAMBDA_ZIP_DIR: writeFixtureZips() });
});

const providerRegion = (stack: SynthesizedStack) => (stack.json.provider!.aws[0] as Block).region;

test("the primary region's app stack keeps the name `app`; the others are `app-<region>`", () => {
  expect(Object.keys(stacks).sort()).toEqual(["app", "app-eu-west-1", "cognito", "pipeline", "state"]);
  const config = loadConfig({ JOBS_REGIONS: "us-east-1,eu-west-1" });
  expect(config.region).toBe("us-east-1");
  expect(config.regions.map((r) => appStackName(config, r))).toEqual(["app", "app-eu-west-1"]);
  expect(providerRegion(stacks.app)).toBe("us-east-1");
  expect(providerRegion(stacks["app-eu-west-1"])).toBe("eu-west-1");
  expect(providerRegion(stacks.cognito)).toBe("us-east-1");
});

test("each regional stack is complete: the same resource types and counts", () => {
  const census = (stack: SynthesizedStack) =>
    Object.fromEntries(Object.keys(stack.json.resource!).map((type) => [type, resourcesOf(stack.json, type).length]));
  expect(census(stacks["app-eu-west-1"])).toEqual(census(stacks.app));
  expect(resourcesOf(stacks["app-eu-west-1"].json, "aws_lambda_function")).toHaveLength(CONTRACT_FUNCTIONS.length);
});

test("the regions' resources are distinct: no account-wide name is shared", () => {
  const names = (stack: SynthesizedStack) =>
    new Set(
      ["aws_iam_role", "aws_s3_bucket", "aws_lambda_function", "aws_sqs_queue", "aws_dynamodb_table", "aws_sns_topic"]
        .flatMap((type) => resourcesOf(stack.json, type))
        .map(([, b]) => b.name ?? b.bucket ?? b.function_name),
    );
  const primary = names(stacks.app);
  const secondary = names(stacks["app-eu-west-1"]);
  expect(primary.size).toBeGreaterThan(10);
  expect([...secondary].filter((n) => primary.has(n))).toEqual([]);
  for (const name of secondary) expect(name).toMatch(/^jobs-dev-eu-west-1-/);
});

test("both regions verify tokens of the one user pool in the primary region", () => {
  for (const name of ["app", "app-eu-west-1"]) {
    const [, authorizer] = resourcesOf(stacks[name].json, "aws_lambda_function").find(([, f]) =>
      String(f.function_name).endsWith("-authorizer"),
    )!;
    expect(authorizer.environment.variables.COGNITO_ISSUER).toMatch(/^https:\/\/cognito-idp\.us-east-1\.amazonaws\.com\//);
  }
});

test("the regions file gives the same stacks as JOBS_REGIONS, and the committed file one app stack per listed region", () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "jobs-regions-")), "regions.json");
  fs.writeFileSync(file, JSON.stringify({ regions: ["us-east-1", "eu-west-1"] }));
  const fromFile = synthAllStacks({ JOBS_LAMBDA_ZIP_DIR: writeFixtureZips() }, { regionsFile: file });
  expect(Object.keys(fromFile).sort()).toEqual(Object.keys(stacks).sort());
  expect(providerRegion(fromFile["app-eu-west-1"])).toBe("eu-west-1");
  // The state stack sets API Gateway's logging role in every listed region.
  expect(resourcesOf(fromFile.state.json, "aws_api_gateway_account")).toHaveLength(2);

  const committed: string[] = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "regions.json"), "utf8")).regions;
  const plain = synthAllStacks({ JOBS_LAMBDA_ZIP_DIR: writeFixtureZips() });
  const config = loadConfig({});
  expect(Object.keys(plain).filter((n) => n.startsWith("app")).sort()).toEqual(committed.map((r) => appStackName(config, r)).sort());
});
