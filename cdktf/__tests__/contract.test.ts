// The meeting points with the other parts of the system (docs/contract.md):
// the functions' environment, which the Rust code reads, and the Terraform
// expressions the local target (`jobs-local`) must be able to evaluate.
import {
  Block,
  CONTRACT_ENVIRONMENT,
  CONTRACT_FUNCTIONS,
  lambdaFor,
  resourcesOf,
  strings,
  synthStacks,
  TerraformJson,
  writeFixtureZips,
} from "./support";

const { app, cognito } = synthStacks({ JOBS_LAMBDA_ZIP_DIR: writeFixtureZips() });

test("the contract names the seven functions", () => {
  expect([...CONTRACT_FUNCTIONS].sort()).toEqual([
    "authorizer",
    "batch-simulator",
    "job-commands",
    "job-processor",
    "job-status",
    "object-counter",
    "webhook-sender",
  ]);
});

test.each(CONTRACT_FUNCTIONS)("%s gets exactly the environment variables the contract lists", (fn) => {
  const [, lambda] = lambdaFor(app.json, fn);
  expect(Object.keys(lambda.environment.variables).sort()).toEqual([...CONTRACT_ENVIRONMENT.get(fn)!].sort());
});

// ------------------------------------------------- local target expressions

/** The resource types the local target reads (docs/contract.md, "App stack resources the local target reads"). */
const LOCAL_TARGET_TYPES = [
  "aws_sqs_queue",
  "aws_dynamodb_table",
  "aws_s3_bucket",
  "aws_lambda_function",
  "aws_lambda_event_source_mapping",
  "aws_api_gateway_rest_api",
  "aws_api_gateway_resource",
  "aws_api_gateway_method",
  "aws_api_gateway_integration",
  "aws_api_gateway_integration_response",
  "aws_api_gateway_authorizer",
  "aws_api_gateway_stage",
  "aws_api_gateway_gateway_response",
  "aws_api_gateway_request_validator",
  "aws_api_gateway_model",
  "aws_sns_topic",
  "aws_s3_bucket_notification",
  "aws_sns_topic_subscription",
  "aws_cognito_user_pool",
  "aws_cognito_user_pool_client",
  "aws_cloudwatch_event_bus",
  "aws_cloudwatch_event_rule",
  "aws_cloudwatch_event_target",
  "aws_secretsmanager_secret",
];

/** Terraform meta-arguments: not values the local target evaluates. */
const META_ARGUMENTS = new Set(["depends_on", "lifecycle", "provider", "count", "for_each", "//"]);

/** The reference forms the local target evaluates; anything else in `${...}` stops `jobs-local up`. */
const ALLOWED_REFERENCES = [
  /^aws_[a-z0-9_]+\.[A-Za-z0-9_-]+\.[a-z0-9_]+$/, // <type>.<name>.<attribute>
  /^data\.aws_caller_identity\.[A-Za-z0-9_-]+\.account_id$/,
  /^data\.aws_region\.[A-Za-z0-9_-]+\.(name|region)$/,
  /^var\.[A-Za-z0-9_-]+$/,
  /^data\.terraform_remote_state\.[A-Za-z0-9_-]+\.outputs\.[A-Za-z0-9_-]+$/,
];

/** The contents of every `${...}` in `text`, braces balanced (a function call may nest them). */
function interpolations(text: string): string[] {
  const found: string[] = [];
  for (let start = text.indexOf("${"); start !== -1; start = text.indexOf("${", start + 2)) {
    let depth = 0;
    for (let i = start + 1; i < text.length; i++) {
      if (text[i] === "{") depth++;
      else if (text[i] === "}" && --depth === 0) {
        found.push(text.slice(start + 2, i));
        break;
      }
    }
  }
  return found;
}

/**
 * `type.name.field: ${expression}` for every expression the local target
 * could not evaluate. All fields of the types it reads are checked, not only
 * the ones the contract lists: it also follows the linking fields (rest_api_id,
 * resource_id, role, ...).
 */
function unsupportedExpressions(stack: TerraformJson): string[] {
  return LOCAL_TARGET_TYPES.flatMap((type) =>
    resourcesOf(stack, type).flatMap(([name, block]: [string, Block]) =>
      Object.entries(block)
        .filter(([field]) => !META_ARGUMENTS.has(field))
        .flatMap(([field, value]) =>
          strings(value)
            .flatMap(interpolations)
            .filter((expression) => !ALLOWED_REFERENCES.some((form) => form.test(expression)))
            .map((expression) => `${type}.${name}.${field}: \${${expression}}`),
        ),
    ),
  );
}

test("the check finds function calls, conditionals and other expressions", () => {
  const stack: TerraformJson = {
    resource: {
      aws_sqs_queue: {
        q: {
          name: "${var.prefix}-jobs",
          redrive_policy: '{"deadLetterTargetArn":"${aws_sqs_queue.dlq.arn}","maxReceiveCount":3}',
          policy: "${jsonencode({a = 1})}",
        },
      },
      aws_lambda_function: {
        f: {
          environment: { variables: { A: "${var.on ? 1 : 2}", B: "${data.aws_region.r.region}" } },
          depends_on: ["aws_iam_role_policy.p"],
        },
      },
      aws_api_gateway_deployment: { d: { triggers: { x: "${sha1(jsonencode([aws_api_gateway_method.m]))}" } } },
    },
  };
  expect(unsupportedExpressions(stack)).toEqual([
    "aws_sqs_queue.q.policy: ${jsonencode({a = 1})}",
    "aws_lambda_function.f.environment: ${var.on ? 1 : 2}",
  ]);
});

test("every expression the local target reads in the app stack is a simple reference", () => {
  expect(strings(app.json.resource).flatMap(interpolations).length).toBeGreaterThan(0);
  expect(unsupportedExpressions(app.json)).toEqual([]);
});

test("every expression the local target reads in the cognito stack is a simple reference", () => {
  expect(unsupportedExpressions(cognito.json)).toEqual([]);
});
