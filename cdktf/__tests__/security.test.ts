// The security baseline every synthesized stack keeps (checkov runs on them in
// `just checkov`; these tests pin the properties behaviour depends on).
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { loadConfig, REPO_ROOT } from "../config";
import { KEY_ADMINISTRATION_ACTIONS, KEY_USE_ACTIONS } from "../constructs/kms-key";
import { deployerRoleName, PIPELINE_PROD_STAGE, PIPELINE_TEST_STAGE } from "../stacks/pipeline-stack";
import { API_GATEWAY_CLOUDWATCH_ACTIONS } from "../stacks/state-stack";
import {
  Block,
  list,
  policyStatements,
  ref,
  resourcesOf,
  Statement,
  SynthesizedStack,
  synthAllStacks,
  TerraformJson,
  theResource,
  writeFixtureZips,
} from "./support";

let stacks: Record<string, SynthesizedStack>;

beforeAll(() => {
  stacks = synthAllStacks({ JOBS_LAMBDA_ZIP_DIR: writeFixtureZips() });
});

const eachStack = () => Object.entries(stacks).map(([name, stack]) => [name, stack.json] as [string, TerraformJson]);

test("every stack is synthesized: cognito, app, pipeline, state", () => {
  expect(Object.keys(stacks).sort()).toEqual(["app", "cognito", "pipeline", "state"]);
});

const RESOURCE_POLICIES = ["aws_kms_key", "aws_s3_bucket_policy", "aws_sns_topic_policy", "aws_sqs_queue_policy"];

describe.each(["app", "pipeline", "state"])("policies of the %s stack", (name) => {
  test("no Allow action, in IAM or resource policies (key, bucket, topic, queue), is or contains a wildcard", () => {
    const allows = policyStatements(stacks[name].json).filter(({ statement }) => statement.Effect === "Allow");
    // Both kinds are there to check: IAM role policies and at least a key and a bucket policy.
    const types = new Set(allows.map(({ type }) => type));
    for (const type of ["aws_iam_role_policy", "aws_kms_key", "aws_s3_bucket_policy"]) expect(types).toContain(type);
    const wildcards = allows.flatMap(({ type, name: resource, statement }) =>
      list(statement.Action)
        .filter((a) => a.includes("*"))
        .map((a) => `${type}.${resource} ${statement.Sid ?? ""}: ${a}`),
    );
    expect(wildcards).toEqual([]);
  });

  test("a wildcard action appears only in a Deny (the buckets' TLS-only s3:*)", () => {
    const denies = policyStatements(stacks[name].json).filter(({ statement }) => list(statement.Action).some((a) => a.includes("*")));
    for (const { statement } of denies) expect(statement).toMatchObject({ Effect: "Deny", Sid: "TlsOnly", Action: "s3:*" });
  });

  test("every Allow resource (and source ARN condition) is this stack's own, or an exception listed with its reason", () => {
    const stack = stacks[name].json;
    const notOwn: string[] = [];
    for (const { type, name: holder, statement } of policyStatements(stack)) {
      if (statement.Effect !== "Allow") continue;
      for (const resource of list(statement.Resource)) {
        const exception = EXCEPTIONS.find((e) => e.applies(name, type, resource, list(statement.Action)));
        if (!exception && !isOwn(resource, name, stack)) notOwn.push(`${type}.${holder} ${statement.Sid ?? ""}: ${resource}`);
      }
      for (const arn of conditionArns(statement)) {
        if (!isOwn(arn, name, stack)) notOwn.push(`${type}.${holder} ${statement.Sid ?? ""} condition: ${arn}`);
      }
    }
    expect(notOwn).toEqual([]);
  });

  test("every exception is used (none outlives its reason)", () => {
    const stack = stacks[name].json;
    const used = new Set(
      policyStatements(stack).flatMap(({ type, statement }) =>
        list(statement.Resource).flatMap((r) =>
          EXCEPTIONS.filter((e) => e.applies(name, type, r, list(statement.Action))).map((e) => e.reason),
        ),
      ),
    );
    for (const exception of EXCEPTIONS.filter((e) => e.stacks.includes(name))) expect(used).toContain(exception.reason);
  });
});

test("the resource policies of every kind are covered: key, bucket, topic and queue policies", () => {
  const types = new Set(eachStack().flatMap(([, json]) => policyStatements(json).map(({ type }) => type)));
  for (const type of RESOURCE_POLICIES) expect(types).toContain(type);
});

/**
 * Allow resources that are not the stack's own, each with why it cannot be.
 * Everything else must be a reference to a resource of the same stack, or an
 * ARN built from the stack's name prefix.
 */
const ACCOUNT = "${data.aws_caller_identity.current-account.account_id}";
const EXCEPTIONS: {
  stacks: string[];
  reason: string;
  applies: (stack: string, type: string, resource: string, actions: string[]) => boolean;
}[] = [
  {
    stacks: ["app"],
    reason: "X-Ray has no resource-level permissions: PutTraceSegments and PutTelemetryRecords accept only '*'",
    applies: (stack, type, resource, actions) =>
      stack === "app" && type === "aws_iam_role_policy" && resource === "*" && actions.every((a) => a.startsWith("xray:")),
  },
  {
    stacks: ["app", "pipeline", "state"],
    reason: "in a key policy '*' is the key itself: a key policy applies to its own key only",
    applies: (_stack, type, resource) => type === "aws_kms_key" && resource === "*",
  },
  {
    stacks: ["pipeline"],
    reason:
      "the deployer roles are created by the account administrator outside the pipeline stack, so that the pipeline " +
      "cannot widen its own rights (docs/deploy.md): exactly the roles of the pipeline's two stages",
    applies: (stack, type, resource, actions) =>
      stack === "pipeline" &&
      type === "aws_iam_role_policy" &&
      actions.length === 1 &&
      actions[0] === "sts:AssumeRole" &&
      [PIPELINE_TEST_STAGE, PIPELINE_PROD_STAGE].some((s) => resource === `arn:aws:iam::${ACCOUNT}:role/${deployerRoleName(s)}`),
  },
  {
    stacks: ["state"],
    reason:
      "API Gateway's account-wide logging role has the permissions AWS documents for it (AmazonAPIGatewayPushToCloudWatchLogs, " +
      "on '*'), narrowed to this account's log groups in each configured region: saving the account setting test-writes a " +
      "log group API Gateway chooses (/aws/apigateway/welcome), and execution log groups are named by API id",
    applies: (stack, type, resource, actions) =>
      stack === "state" &&
      type === "aws_iam_role_policy" &&
      actions.every((a) => (API_GATEWAY_CLOUDWATCH_ACTIONS as readonly string[]).includes(a)) &&
      loadConfig({}).regions.some((region) =>
        ["", ":log-stream:*"].some((suffix) => resource === `arn:aws:logs:${region}:${ACCOUNT}:log-group:*${suffix}`),
      ),
  },
];

/** The names every stack's ARNs are built from (the state stack's bucket names start `jobs-tfstate`). */
const OWN_PREFIXES: Record<string, string[]> = { app: ["jobs-dev"], pipeline: ["jobs-pipeline"], state: ["jobs-tfstate"] };

/**
 * Whether `resource` is one of the stack's own: a reference to a resource
 * the stack defines (`${aws_...}`, optionally followed by a path), or an ARN
 * in the stack's region (or none) and account (or none) whose name starts
 * with the stack's prefix, with no wildcard before it.
 */
function isOwn(resource: string, stackName: string, stack: TerraformJson): boolean {
  const reference = /^\$\{(aws_[a-z0-9_]+)\.([^.}]+)\.[a-z_]+\}([^$]*)$/.exec(resource);
  if (reference) return stack.resource?.[reference[1]]?.[reference[2]] !== undefined;
  const arn = /^arn:aws:[a-z0-9-]+:([^:]*):([^:]*):(.+)$/.exec(resource);
  if (!arn) return false;
  const [, region, account, named] = arn;
  // WAF delivers logs only to log groups whose names start with aws-waf-logs- (its rule, not a foreign resource).
  const rest = named.replace(/(^|[:/])aws-waf-logs-/, "$1");
  const regions = new Set(["", ...loadConfig({}).regions, ...Object.keys(stack.data?.aws_region ?? {}).map((d) => `\${data.aws_region.${d}.region}`)]);
  const accounts = new Set(["", ...Object.keys(stack.data?.aws_caller_identity ?? {}).map((d) => `\${data.aws_caller_identity.${d}.account_id}`)]);
  if (!regions.has(region) || !accounts.has(account)) return false;
  return OWN_PREFIXES[stackName].some((prefix) => {
    const at = rest.search(new RegExp(`(^|[:/])${prefix}(-|$)`));
    return at >= 0 && !rest.slice(0, at + 1).includes("*");
  });
}

/** The ARNs an Allow statement's conditions name (`aws:SourceArn`, a log group's encryption context). */
function conditionArns(statement: Statement): string[] {
  return Object.values(statement.Condition ?? {}).flatMap((operands) =>
    Object.entries(operands)
      .filter(([key]) => /(SourceArn|:arn)$/i.test(key))
      .flatMap(([, value]) => list(value)),
  );
}

describe("the ownership check itself", () => {
  const app = () => stacks.app.json;
  test.each([
    // What the stacks granted before (a region wildcard, any log group of the account).
    `arn:aws:logs:*:${ACCOUNT}:log-group:/aws/apigateway/jobs-*`,
    `arn:aws:logs:\${data.aws_region.current-region.region}:${ACCOUNT}:log-group:*`,
    `arn:aws:iam::${ACCOUNT}:role/jobs-test-deployer`,
    `arn:aws:s3:::*jobs-dev-results`,
    `arn:aws:sqs:us-east-1:${ACCOUNT}:jobs-devx-queue`,
    "${aws_sqs_queue.not_in_this_stack.arn}",
    "*",
  ])("rejects %s in the app stack", (resource) => {
    expect(isOwn(resource, "app", app())).toBe(false);
  });

  test.each([
    `arn:aws:logs:\${data.aws_region.current-region.region}:${ACCOUNT}:log-group:/aws/lambda/jobs-dev-*`,
    `arn:aws:s3:::jobs-dev-results-${ACCOUNT}`,
  ])("accepts %s in the app stack", (resource) => {
    expect(isOwn(resource, "app", app())).toBe(true);
  });
});

describe.each(["app", "pipeline", "state"])("the key policy of the %s stack", (name) => {
  const keyStatements = () => {
    const [, key] = theResource(stacks[name].json, "aws_kms_key");
    return JSON.parse(key.policy).Statement as Statement[];
  };

  test("gives the account's IAM policies the key's administration and use, spelled out", () => {
    const root = keyStatements().find((s) => s.Sid === "AccountIamPolicies")!;
    expect(root.Principal).toEqual({ AWS: `arn:aws:iam::${ACCOUNT}:root` });
    // '*' in a key policy is this key.
    expect(root.Resource).toBe("*");
    expect(list(root.Action).filter((a) => a.includes("*"))).toEqual([]);
    expect(list(root.Action)).toEqual(expect.arrayContaining([...KEY_ADMINISTRATION_ACTIONS, ...KEY_USE_ACTIONS]));
    for (const action of ["kms:DescribeKey", "kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion", "kms:TagResource"]) {
      expect(list(root.Action)).toContain(action);
    }
  });

  test("covers every KMS action the stack's IAM policies grant (IAM delegation needs the key policy too)", () => {
    const root = keyStatements().find((s) => s.Sid === "AccountIamPolicies")!;
    const granted = policyStatements(stacks[name].json)
      .filter(({ type }) => type === "aws_iam_role_policy")
      .flatMap(({ statement }) => list(statement.Action))
      .filter((a) => a.startsWith("kms:"));
    for (const action of granted) expect(list(root.Action)).toContain(action);
  });

  test("lets CloudWatch Logs use it for exactly the stack's log groups, and only if it has some", () => {
    const stack = stacks[name].json;
    const logs = keyStatements().find((s) => s.Sid === "CloudWatchLogs");
    const groups = resourcesOf(stack, "aws_cloudwatch_log_group").map(([, g]) => g.name as string);
    if (groups.length === 0) {
      expect(logs).toBeUndefined();
      return;
    }
    const patterns = list(logs!.Condition!.ArnLike["kms:EncryptionContext:aws:logs:arn"]);
    const region = name === "app" ? "${data.aws_region.current-region.region}" : "us-east-1";
    const matches = (arn: string) =>
      patterns.some((p) => new RegExp(`^${p.replace(/[.+?^(){}|[\]\\$]/g, "\\$&").replace(/\*/g, ".*")}$`).test(arn));
    // Every log group of the stack may use it...
    for (const group of groups) expect(matches(`arn:aws:logs:${region}:${ACCOUNT}:log-group:${group}`)).toBe(true);
    // ... and not the account's other log groups.
    expect(matches(`arn:aws:logs:${region}:${ACCOUNT}:log-group:/aws/lambda/someone-else`)).toBe(false);
    expect(matches(`arn:aws:logs:${region}:${ACCOUNT}:log-group:/aws/codebuild/other-project`)).toBe(false);
  });
});

test("every function has reserved concurrency", () => {
  const functions = eachStack().flatMap(([, json]) => resourcesOf(json, "aws_lambda_function"));
  expect(functions.length).toBe(7);
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

  const script = path.join(REPO_ROOT, "cdktf", "scripts", "checkov.py");
  /** A one-file stack `stack` in a new directory, and a fake checkov there running `body` (sh). */
  function fixture(resources: Record<string, Record<string, Block>>, body: string) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "jobs-checkov-"));
    const stack = path.join(dir, "stack");
    fs.mkdirSync(stack);
    fs.writeFileSync(path.join(stack, "cdk.tf.json"), JSON.stringify({ resource: resources }));
    const fake = path.join(dir, "checkov");
    fs.writeFileSync(fake, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    return { stack, fake };
  }
  /** checkov's JSON report (one framework) listing `failed`, with its summary. */
  const report = (failed: { check_id: string; resource: string }[], passed = 7) => ({
    check_type: "terraform_json",
    results: { failed_checks: failed.map((f) => ({ ...f, check_name: "a check" })) },
    summary: { passed, failed: failed.length, skipped: 0, parsing_errors: 0, resource_count: 0, checkov_version: "3.3.30" },
  });
  const prints = (doc: unknown, exit: number) => `cat <<'JSON'\n${JSON.stringify(doc)}\nJSON\nexit ${exit}`;
  const runScript = ({ stack, fake }: { stack: string; fake: string }) =>
    spawnSync("python3", [script, "--checkov", fake, stack], { encoding: "utf8" });

  describe("scripts/checkov.py counts a failure as skipped only on the resource that carries the skip", () => {
    /** Runs the script on a one-file stack with a fake checkov reporting `failed`. */
    function run(resources: Record<string, Record<string, Block>>, failed: { check_id: string; resource: string }[]) {
      return runScript(fixture(resources, prints(report(failed), failed.length ? 1 : 0)));
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

    test("a clean report passes, with checkov's passed count", () => {
      const result = run({ aws_s3_bucket: { b: {} } }, []);
      expect(result.stdout).toContain("stack: 7 passed, 0 failed, 0 skipped inline, 0 unused skips");
      expect(result.status).toBe(0);
    });
  });

  describe("scripts/checkov.py fails closed: no valid report, no pass", () => {
    const resources = { aws_s3_bucket: { b: {} } };
    const crash = 'echo "Traceback (most recent call last):" >&2; echo "RuntimeError: the parser blew up" >&2';

    test.each([
      ["crashes with exit 1 and prints nothing", `${crash}; exit 1`, "checkov printed no report"],
      ["crashes with exit 1 after half a report", `${crash}; printf '{"check_type": "terraform_js'; exit 1`, "not JSON"],
      ["prints a traceback on stdout and exits 1", `${crash}; echo "Traceback: boom"; exit 1`, "not JSON"],
      ["exits 0 with no output", `${crash}; exit 0`, "checkov printed no report"],
      ["exits 2", `${crash}; exit 2`, "checkov failed"],
      ["reports results but no summary", prints({ results: { failed_checks: [] } }, 0) + "", "no summary"],
      ["reports an empty list", prints([], 0), "report is empty"],
    ])("when checkov %s, it exits non-zero naming the stack and showing checkov's stderr", (_what, body, why) => {
      const result = runScript(fixture(resources, body));
      expect(result.status).not.toBe(0);
      expect(result.stderr).toContain("stack: NO VALID CHECKOV REPORT");
      expect(result.stderr).toContain(why);
      if (body.startsWith("echo")) expect(result.stderr).toContain("RuntimeError: the parser blew up");
      expect(result.stderr).toMatch(/no valid report for stack\(s\) stack/);
      expect(result.stdout).not.toContain("0 failed checks on every stack");
    });

    test("a report with parsing errors fails", () => {
      const doc = report([]);
      doc.summary.parsing_errors = 1;
      const result = runScript(fixture(resources, prints(doc, 0)));
      expect(result.status).not.toBe(0);
      expect(result.stderr).toContain("could not parse 1 file(s)");
    });

    test("a summary that counts more failures than the report lists fails", () => {
      const doc = report([{ check_id: "CKV_AWS_144", resource: "aws_s3_bucket.b" }]);
      doc.summary.failed = 3;
      const result = runScript(fixture(resources, prints(doc, 1)));
      expect(result.status).not.toBe(0);
      expect(result.stderr).toContain("counts 3 failed checks but the report lists 1");
    });

    test("a report that ran no check on a stack with resources fails", () => {
      const result = runScript(fixture(resources, prints(report([], 0), 0)));
      expect(result.status).not.toBe(0);
      expect(result.stderr).toContain("ran no check");
    });

    test("the other stacks are still checked, and the broken one is named", () => {
      const broken = fixture(resources, `${crash}; exit 1`);
      const good = fixture(resources, prints(report([]), 0));
      const goodStack = path.join(path.dirname(broken.stack), "good");
      fs.renameSync(good.stack, goodStack);
      // One fake answering per stack: a crash for `stack`, a clean report for `good`.
      fs.writeFileSync(
        broken.fake,
        `#!/bin/sh\ncase "$2" in */good) ${prints(report([]), 0)} ;; esac\n${crash}; exit 1\n`,
        { mode: 0o755 },
      );
      const result = spawnSync("python3", [script, "--checkov", broken.fake, broken.stack, goodStack], { encoding: "utf8" });
      expect(result.stdout).toContain("good: 7 passed, 0 failed");
      expect(result.stderr).toContain("no valid report for stack(s) stack:");
      expect(result.status).not.toBe(0);
    });
  });
});
