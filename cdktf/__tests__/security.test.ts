// The security baseline every synthesized stack keeps (checkov runs on them in
// `just checkov`; these tests pin the properties behaviour depends on).
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { REPO_ROOT } from "../config";
import { Block, ref, resourcesOf, SynthesizedStack, synthAllStacks, TerraformJson, writeFixtureZips } from "./support";

let stacks: Record<string, SynthesizedStack>;

beforeAll(() => {
  stacks = synthAllStacks({ JOBS_LAMBDA_ZIP_DIR: writeFixtureZips() });
});

const eachStack = () => Object.entries(stacks).map(([name, stack]) => [name, stack.json] as [string, TerraformJson]);

test("every stack is synthesized: cognito, app, pipeline, state", () => {
  expect(Object.keys(stacks).sort()).toEqual(["app", "cognito", "pipeline", "state"]);
});

/** The IAM statements of every inline role policy of `stack`. */
function iamStatements(stack: TerraformJson): { Action: string | string[]; Resource: string | string[] }[] {
  return resourcesOf(stack, "aws_iam_role_policy").flatMap(([, p]) => JSON.parse(p.policy).Statement);
}

describe.each(["app", "pipeline", "state"])("IAM of the %s stack", (name) => {
  test("no action is or contains a wildcard", () => {
    const actions = iamStatements(stacks[name].json).flatMap((s) => [s.Action].flat());
    expect(actions.length).toBeGreaterThan(0);
    expect(actions.filter((a) => a.includes("*"))).toEqual([]);
  });

  test("every resource is one of this stack's own (a reference into it), '*' only for X-Ray", () => {
    for (const statement of iamStatements(stacks[name].json)) {
      for (const resource of [statement.Resource].flat()) {
        if (resource === "*") {
          expect([statement.Action].flat().every((a) => a.startsWith("xray:"))).toBe(true);
        } else {
          // A reference to a resource or the account of this stack, never a bare or foreign ARN.
          expect(resource).toMatch(/\$\{(aws_[a-z0-9_]+\.[^.}]+\.[a-z_]+|data\.aws_caller_identity\.[^.}]+\.account_id)\}/);
        }
      }
    }
  });
});

test("every function has reserved concurrency", () => {
  const functions = eachStack().flatMap(([, json]) => resourcesOf(json, "aws_lambda_function"));
  expect(functions.length).toBe(5);
  for (const [, fn] of functions) expect(fn.reserved_concurrent_executions).toBeGreaterThan(0);
});

test("queues, table, log groups and topics are encrypted with a customer-managed key of their stack", () => {
  const encrypted: [string, string][] = [
    ["aws_sqs_queue", "kms_master_key_id"],
    ["aws_cloudwatch_log_group", "kms_key_id"],
    ["aws_sns_topic", "kms_master_key_id"],
  ];
  for (const [, json] of eachStack()) {
    for (const [type, field] of encrypted) {
      for (const [, block] of resourcesOf(json, type)) expect(block[field]).toMatch(/^\$\{aws_kms_key\.[^.]+\.arn\}$/);
    }
    for (const [, table] of resourcesOf(json, "aws_dynamodb_table")) {
      expect(table.server_side_encryption.kms_key_arn).toMatch(/^\$\{aws_kms_key\./);
      expect(table.point_in_time_recovery).toEqual({ enabled: true });
    }
    for (const [, key] of resourcesOf(json, "aws_kms_key")) expect(key.enable_key_rotation).toBe(true);
  }
});

describe("every bucket of every stack", () => {
  const buckets = () =>
    eachStack().flatMap(([stack, json]) => resourcesOf(json, "aws_s3_bucket").map(([name]) => [stack, json, name] as const));
  /** The resources of `type` configuring bucket `name`. */
  const configs = (json: TerraformJson, type: string, name: string): Block[] =>
    resourcesOf(json, type)
      .filter(([, b]) => b.bucket === ref("aws_s3_bucket", name, "id"))
      .map(([, b]) => b);

  test("there are buckets in app, pipeline and state", () => {
    expect(new Set(buckets().map(([stack]) => stack))).toEqual(new Set(["app", "pipeline", "state"]));
  });

  test("blocks public access, is versioned and encrypted, expires objects and allows TLS only", () => {
    for (const [, json, name] of buckets()) {
      expect(configs(json, "aws_s3_bucket_public_access_block", name)).toEqual([
        expect.objectContaining({ block_public_acls: true, block_public_policy: true, ignore_public_acls: true, restrict_public_buckets: true }),
      ]);
      expect(configs(json, "aws_s3_bucket_versioning", name)).toEqual([
        expect.objectContaining({ versioning_configuration: { status: "Enabled" } }),
      ]);
      expect(configs(json, "aws_s3_bucket_server_side_encryption_configuration", name)).toHaveLength(1);
      expect(configs(json, "aws_s3_bucket_lifecycle_configuration", name)).toHaveLength(1);
      const [policy] = configs(json, "aws_s3_bucket_policy", name);
      expect(JSON.parse(policy.policy).Statement).toContainEqual(
        expect.objectContaining({ Sid: "TlsOnly", Effect: "Deny", Condition: { Bool: { "aws:SecureTransport": "false" } } }),
      );
    }
  });

  test("logs its access to a log bucket, unless it is that log bucket", () => {
    for (const [, json, name] of buckets()) {
      const logging = configs(json, "aws_s3_bucket_logging", name);
      const isLogTarget = resourcesOf(json, "aws_s3_bucket_logging").some(
        ([, l]) => l.target_bucket === ref("aws_s3_bucket", name, "id"),
      );
      expect(logging.length + (isLogTarget ? 1 : 0)).toBe(1);
    }
  });

  test("is removable with its stack, except the state bucket that holds every stage's state", () => {
    for (const [stack, json, name] of buckets()) {
      const bucket = json.resource!.aws_s3_bucket[name];
      expect(bucket.force_destroy).toBe(!(stack === "state" && /^state/.test(name)));
    }
  });
});

describe("inline checkov skips", () => {
  test("are on single resources, each with a one-line justification", () => {
    let count = 0;
    for (const json of Object.values(stacks).map((s) => s.withComments!)) {
      for (const type of Object.keys(json.resource ?? {})) {
        for (const [, block] of resourcesOf(json, type)) {
          for (const line of block["//"]?.checkov ?? []) {
            expect(line).toMatch(/^checkov:skip=CKV2?_AWS_\d+: \S.{10,}$/);
            count++;
          }
        }
      }
    }
    expect(count).toBeGreaterThan(0);
  });

  test("there is no blanket skip list", () => {
    for (const file of [".checkov.yaml", ".checkov.yml", "cdktf/.checkov.yaml"]) {
      expect(fs.existsSync(path.join(REPO_ROOT, file))).toBe(false);
    }
    expect(fs.readFileSync(path.join(REPO_ROOT, "justfile"), "utf8")).not.toMatch(/--skip-check/);
  });

  describe("scripts/checkov.py counts a failure as skipped only on the resource that carries the skip", () => {
    const script = path.join(REPO_ROOT, "cdktf", "scripts", "checkov.py");
    /** Runs the script on a one-file stack with a fake checkov reporting `failed`. */
    function run(resources: Record<string, Record<string, Block>>, failed: { check_id: string; resource: string }[]) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "jobs-checkov-"));
      const stack = path.join(dir, "stack");
      fs.mkdirSync(stack);
      fs.writeFileSync(path.join(stack, "cdk.tf.json"), JSON.stringify({ resource: resources }));
      const report = { results: { failed_checks: failed.map((f) => ({ ...f, check_name: "a check" })) } };
      const fake = path.join(dir, "checkov");
      fs.writeFileSync(fake, `#!/bin/sh\ncat <<'JSON'\n${JSON.stringify(report)}\nJSON\nexit 1\n`, { mode: 0o755 });
      return spawnSync("python3", [script, "--checkov", fake, stack], { encoding: "utf8" });
    }
    const skipped = (id: string) => ({ "//": { checkov: [`checkov:skip=${id}: a good reason for this`] } });

    test("a skipped failure passes", () => {
      const result = run({ aws_s3_bucket: { b: skipped("CKV_AWS_144") } }, [
        { check_id: "CKV_AWS_144", resource: "aws_s3_bucket.b" },
      ]);
      expect(result.stdout).toContain("0 failed, 1 skipped inline, 0 unused");
      expect(result.status).toBe(0);
    });

    test("the same check failing on another resource fails", () => {
      const result = run({ aws_s3_bucket: { b: skipped("CKV_AWS_144"), c: {} } }, [
        { check_id: "CKV_AWS_144", resource: "aws_s3_bucket.b" },
        { check_id: "CKV_AWS_144", resource: "aws_s3_bucket.c" },
      ]);
      expect(result.stdout).toContain("FAILED CKV_AWS_144 a check: aws_s3_bucket.c");
      expect(result.status).toBe(1);
    });

    test("a skip that matches no failure fails", () => {
      const result = run({ aws_lambda_function: { f: skipped("CKV_AWS_117") } }, []);
      expect(result.stdout).toContain("UNUSED skip CKV_AWS_117 on aws_lambda_function.f");
      expect(result.status).toBe(1);
    });
  });
});
