// Shared by the tests: fixture zips, synthesis, and small readers of the
// synthesized Terraform JSON and of docs/contract.md.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Testing } from "cdktn";
// The types of the jest matchers that setup.ts registers.
import "cdktn/lib/testing/adapters/jest";
import { LoadConfigOptions, loadConfig, REPO_ROOT } from "../config";
import { defineStacks } from "../main";

// ---------------------------------------------------------------- contract

const CONTRACT = fs.readFileSync(path.join(REPO_ROOT, "docs", "contract.md"), "utf8");

/** The rows of the table under the `## <title>...` heading of docs/contract.md, cells without backticks. */
function contractTable(title: string): string[][] {
  const section = CONTRACT.split(/^## /m).find((s) => s.startsWith(title));
  if (!section) throw new Error(`docs/contract.md has no "## ${title}" section`);
  return section
    .split("\n")
    .filter((line) => line.startsWith("|"))
    .slice(2) // header and |---| separator
    .map((line) =>
      line
        .split("|")
        .slice(1, -1)
        .map((cell) => cell.trim().replace(/`/g, "")),
    );
}

/** The functions of docs/contract.md's "Functions" table. */
export const CONTRACT_FUNCTIONS: string[] = contractTable("Functions").map(([name]) => name);

/** Function name → the environment variable names docs/contract.md gives it. */
export const CONTRACT_ENVIRONMENT: Map<string, string[]> = (() => {
  const env = new Map<string, string[]>(CONTRACT_FUNCTIONS.map((fn) => [fn, []]));
  for (const [variable, functions] of contractTable("Environment variables")) {
    const names = functions === "all" ? CONTRACT_FUNCTIONS : functions.split(",").map((f) => f.trim());
    for (const fn of names) {
      const list = env.get(fn);
      if (!list) throw new Error(`docs/contract.md gives ${variable} to unknown function ${fn}`);
      list.push(variable);
    }
  }
  return env;
})();

// ---------------------------------------------------------------- fixtures

/**
 * A new directory holding `<function>/bootstrap.zip` for every function.
 * Synthesis only hashes and copies the file, so the bytes need not be a real
 * archive; `content` decides them, per function.
 */
export function writeFixtureZips(content: (fn: string) => string = (fn) => `fixture package of ${fn}`): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "jobs-lambda-zips-"));
  for (const fn of CONTRACT_FUNCTIONS) {
    fs.mkdirSync(path.join(dir, fn));
    fs.writeFileSync(path.join(dir, fn, "bootstrap.zip"), content(fn));
  }
  return dir;
}

// ---------------------------------------------------------------- synthesis

/** A synthesized stack: Testing.synth's JSON text (for the matchers) and its parsed form. */
export interface SynthesizedStack {
  readonly text: string;
  readonly json: TerraformJson;
  /** The JSON as `npm run synth` writes it, with the "//" comments Testing.synth removes (synthAllStacks only). */
  readonly withComments?: TerraformJson;
}

export interface TerraformJson {
  terraform?: Block;
  provider?: Record<string, Block[]>;
  variable?: Record<string, Block>;
  resource?: Record<string, Record<string, Block>>;
  data?: Record<string, Record<string, Block>>;
  output?: Record<string, Block>;
}

export type Block = Record<string, any>;

/** Synthesizes both stacks with the configuration that `env` (the JOBS_* variables) gives. */
export function synthStacks(
  env: Record<string, string>,
  options: LoadConfigOptions = {},
): { app: SynthesizedStack; cognito: SynthesizedStack } {
  const stacks = defineStacks(Testing.app(), loadConfig(env, options));
  // `runValidations` also runs the preparing pass that turns references to
  // the cognito stack into remote-state reads (and adds the matching outputs
  // to the cognito stack): synthesize the app stack first.
  const synth = (stack: typeof stacks.app | typeof stacks.cognito): SynthesizedStack => {
    const text = Testing.synth(stack, true);
    return { text, json: JSON.parse(text) };
  };
  const app = synth(stacks.app);
  return { app, cognito: synth(stacks.cognito) };
}

/**
 * Synthesizes every stack (app stacks first, see above), keyed by stack name:
 * `cognito`, `app`, `app-<region>`..., `pipeline`, `state`.
 */
export function synthAllStacks(env: Record<string, string>, options: LoadConfigOptions = {}): Record<string, SynthesizedStack> {
  const stacks = defineStacks(Testing.app(), loadConfig(env, options));
  const out: Record<string, SynthesizedStack> = {};
  for (const stack of [...stacks.apps, stacks.cognito, stacks.pipeline, stacks.state]) {
    const text = Testing.synth(stack, true);
    const withComments = JSON.parse(JSON.stringify(stack.toTerraform()));
    out[stack.node.id] = { text, json: JSON.parse(text), withComments };
  }
  return out;
}

// ---------------------------------------------------------------- readers

/** Every string anywhere in `value`. */
export function strings(value: unknown): string[] {
  if (typeof value === "string") return [value];
  if (Array.isArray(value)) return value.flatMap(strings);
  if (value && typeof value === "object") return Object.values(value).flatMap(strings);
  return [];
}

/** `[name, block]` of every resource of `type`. */
export function resourcesOf(stack: TerraformJson, type: string): [string, Block][] {
  return Object.entries(stack.resource?.[type] ?? {});
}

/** The single resource of `type` matching `predicate`; fails otherwise. */
export function theResource(
  stack: TerraformJson,
  type: string,
  predicate: (block: Block, name: string) => boolean = () => true,
): [string, Block] {
  const found = resourcesOf(stack, type).filter(([name, block]) => predicate(block, name));
  if (found.length !== 1) throw new Error(`expected one ${type} matching, found ${found.length}`);
  return found[0];
}

/** `${type.name.attribute}`: how a reference appears in the synthesized JSON. */
export function ref(type: string, name: string, attribute: string): string {
  return `\${${type}.${name}.${attribute}}`;
}

/** The Lambda function that deploys the contract's function `fn` (stage `dev`). */
export function lambdaFor(stack: TerraformJson, fn: string): [string, Block] {
  return theResource(stack, "aws_lambda_function", (f) => f.function_name === `jobs-dev-${fn}`);
}

/** The SQS event source mapping that feeds the contract's function `fn` (stage `dev`). */
export function mappingFor(stack: TerraformJson, fn: string): [string, Block] {
  const [functionName] = lambdaFor(stack, fn);
  return theResource(
    stack,
    "aws_lambda_event_source_mapping",
    (m) => m.function_name === ref("aws_lambda_function", functionName, "function_name"),
  );
}

/** The IAM statements of every inline policy of the role `roleName`. */
export function statementsOfRole(stack: TerraformJson, roleName: string): { Action: string[]; Resource: string[] }[] {
  return resourcesOf(stack, "aws_iam_role_policy")
    .filter(([, policy]) => policy.role === ref("aws_iam_role", roleName, "id"))
    .flatMap(([, policy]) => JSON.parse(policy.policy).Statement);
}

/** The name of the resource of `type` that the reference `expression` points at. */
export function referencedName(expression: string, type: string): string {
  const match = new RegExp(`^\\$\\{${type}\\.([^.}]+)\\.[a-z_]+\\}$`).exec(expression);
  if (!match) throw new Error(`${expression} is not a reference to a ${type}`);
  return match[1];
}

// ---------------------------------------------------------------- policies

/** One statement of an IAM or resource policy. */
export interface Statement {
  Sid?: string;
  Effect: "Allow" | "Deny";
  Principal?: unknown;
  Action: string | string[];
  Resource: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

/** Where a policy document lives: the resource type and its field. */
export const POLICY_FIELDS: Record<string, string> = {
  aws_iam_role_policy: "policy",
  aws_kms_key: "policy",
  aws_s3_bucket_policy: "policy",
  aws_sns_topic_policy: "policy",
  aws_sqs_queue_policy: "policy",
};

/** Every statement of every IAM role policy and resource policy (key, bucket, topic, queue) of `stack`. */
export function policyStatements(stack: TerraformJson): { type: string; name: string; statement: Statement }[] {
  return Object.entries(POLICY_FIELDS).flatMap(([type, field]) =>
    resourcesOf(stack, type).flatMap(([name, block]) =>
      [JSON.parse(block[field]).Statement].flat().map((statement: Statement) => ({ type, name, statement })),
    ),
  );
}

/** A statement's actions (or resources) as a list. */
export function list(value: string | string[] | undefined): string[] {
  return value === undefined ? [] : [value].flat();
}
