import * as fs from "node:fs";
import * as path from "node:path";
import { REPO_ROOT } from "../config";
import { Block, ref, referencedName, resourcesOf, SynthesizedStack, synthStacks, theResource, writeFixtureZips } from "./support";

let app: SynthesizedStack;
let aclName: string;
let acl: Block;

beforeAll(() => {
  app = synthStacks({ JOBS_LAMBDA_ZIP_DIR: writeFixtureZips() }).app;
  [aclName, acl] = theResource(app.json, "aws_wafv2_web_acl");
});

function rule(name: string): Block {
  const found = acl.rule.filter((r: Block) => r.name === name);
  expect(found).toHaveLength(1);
  return found[0];
}

test("a regional web ACL guards the API's stage and lets through what no rule blocks", () => {
  const [stageName] = theResource(app.json, "aws_api_gateway_stage");
  const [, association] = theResource(app.json, "aws_wafv2_web_acl_association");
  expect(association).toMatchObject({
    resource_arn: ref("aws_api_gateway_stage", stageName, "arn"),
    web_acl_arn: ref("aws_wafv2_web_acl", aclName, "arn"),
  });
  expect(acl.scope).toBe("REGIONAL");
  expect(acl.default_action).toEqual({ allow: {} });
  expect(acl.rule.map((r: Block) => r.name).sort()).toEqual(["per-address", "per-token"]);
});

// Rate-based rules count per aggregation key over an evaluation window of
// 60, 120, 300 or 600 s, limit at least 10:
// https://docs.aws.amazon.com/waf/latest/developerguide/waf-rule-statement-type-rate-based-high-level-settings.html
test.each([
  ["per-token", 600, { aggregate_key_type: "CUSTOM_KEYS", custom_key: [{ header: [{ name: "authorization", text_transformation: [{ priority: 0, type: "NONE" }] }] }] }],
  ["per-address", 1200, { aggregate_key_type: "IP" }],
])("%s: at most %d requests a minute per key, a valid WAF rate-based statement", (name, limit, key) => {
  const statement = rule(name).statement.rate_based_statement[0];
  expect(statement).toEqual({ limit, evaluation_window_sec: 60, ...key });
  expect([60, 120, 300, 600]).toContain(statement.evaluation_window_sec);
  expect(statement.limit).toBeGreaterThanOrEqual(10);
});

test("one client gets a minority of the stage throttle: it cannot starve the others", () => {
  const [, settings] = theResource(app.json, "aws_api_gateway_method_settings");
  const stagePerMinute = settings.settings.throttling_rate_limit * 60;
  const perToken = rule("per-token").statement.rate_based_statement[0].limit;
  const perAddress = rule("per-address").statement.rate_based_statement[0].limit;
  expect(perToken / stagePerMinute).toBeLessThanOrEqual(0.1);
  expect(perAddress / stagePerMinute).toBeLessThanOrEqual(0.2);
});

test("a blocked request gets 429 with Retry-After and a JSON body with a message and a hint", () => {
  for (const name of ["per-token", "per-address"]) {
    expect(rule(name).action).toEqual({
      block: {
        custom_response: {
          response_code: 429,
          custom_response_body_key: "too-many-requests",
          response_header: [{ name: "Retry-After", value: "60" }],
        },
      },
    });
  }
  const [body] = acl.custom_response_body;
  expect(body).toMatchObject({ key: "too-many-requests", content_type: "APPLICATION_JSON" });
  const json = JSON.parse(body.content);
  expect(json.message).toBe("Too Many Requests");
  expect(json.hint).toContain("600 a minute per token, 1,200 a minute per IP address");
});

test("blocked requests are logged, the Authorization header redacted, to an encrypted aws-waf-logs- group", () => {
  const [, logging] = theResource(app.json, "aws_wafv2_web_acl_logging_configuration");
  expect(logging.resource_arn).toBe(ref("aws_wafv2_web_acl", aclName, "arn"));
  expect(logging.redacted_fields).toEqual([{ single_header: { name: "authorization" } }]);
  expect(logging.logging_filter).toEqual({
    default_behavior: "DROP",
    filter: [{ behavior: "KEEP", requirement: "MEETS_ANY", condition: [{ action_condition: { action: "BLOCK" } }] }],
  });
  const groupName = referencedName(logging.log_destination_configs[0], "aws_cloudwatch_log_group");
  const group = app.json.resource!.aws_cloudwatch_log_group[groupName];
  expect(group.name).toBe("aws-waf-logs-jobs-dev-api");
  expect(group.kms_key_id).toMatch(/^\$\{aws_kms_key\./);
  // CloudWatch Logs may use the key for that group.
  const [, key] = theResource(app.json, "aws_kms_key");
  expect(key.policy).toContain("log-group:aws-waf-logs-jobs-dev-api");
});

test("docs/api.md states the limits, and docs/local-target.md that the local target does not enforce them", () => {
  const apiDoc = fs.readFileSync(path.join(REPO_ROOT, "docs", "api.md"), "utf8");
  expect(apiDoc).toContain("600 requests a minute per token and 1,200 per IP address");
  const localDoc = fs.readFileSync(path.join(REPO_ROOT, "docs", "local-target.md"), "utf8");
  expect(localDoc).toContain("WAF");
  expect(resourcesOf(app.json, "aws_wafv2_web_acl")).toHaveLength(1);
});
