import { ApiGatewayAuthorizer } from "@cdktn/provider-aws/lib/api-gateway-authorizer";
import { ApiGatewayGatewayResponse } from "@cdktn/provider-aws/lib/api-gateway-gateway-response";
import { ApiGatewayIntegration } from "@cdktn/provider-aws/lib/api-gateway-integration";
import { ApiGatewayStage } from "@cdktn/provider-aws/lib/api-gateway-stage";
import * as fs from "node:fs";
import * as path from "node:path";
import { REPO_ROOT } from "../config";
import {
  CALLBACK_URL_HEADER,
  CALLBACK_URL_MESSAGE_ATTRIBUTE,
  IDEMPOTENCY_KEY_HEADER,
  JOB_API_ROUTES,
  JOB_ID_MESSAGE_ATTRIBUTE,
  MACHINE_ROUTES,
  maxJobRequestBytes,
  maxMachineJobRequestBytes,
  tooLargeMessage,
} from "../constructs/job-api";
import {
  Block,
  lambdaFor,
  mappingFor,
  ref,
  referencedName,
  resourcesOf,
  statementsOfRole,
  SynthesizedStack,
  synthStacks,
  theResource,
  writeFixtureZips,
} from "./support";

let app: SynthesizedStack;
let apiName: string;

beforeAll(() => {
  app = synthStacks({ JOBS_LAMBDA_ZIP_DIR: writeFixtureZips() }).app;
  [apiName] = theResource(app.json, "aws_api_gateway_rest_api");
});

/** `/a/{b}` of an aws_api_gateway_resource, following parent_id up to the API's root. */
function pathOf(resourceId: string): string {
  if (resourceId === ref("aws_api_gateway_rest_api", apiName, "root_resource_id")) return "";
  const resource = app.json.resource!.aws_api_gateway_resource[referencedName(resourceId, "aws_api_gateway_resource")];
  return `${pathOf(resource.parent_id)}/${resource.path_part}`;
}

/** `[METHOD /path, method]` for every method of the API. */
function methods(): [string, Block][] {
  return resourcesOf(app.json, "aws_api_gateway_method").map(([, m]) => [
    `${m.http_method} ${pathOf(m.resource_id)}`,
    m,
  ]);
}

/** The integration of `route` ("POST /submit-job-request"), matched as API Gateway does: by resource and method. */
function integrationOf(route: string): Block {
  return theResource(
    app.json,
    "aws_api_gateway_integration",
    (i) => `${i.http_method} ${pathOf(i.resource_id)}` === route,
  )[1];
}

/** The routes of Cognito users. */
const COGNITO_ROUTES = ["GET /count", "GET /job-status/{jobId}", "GET /jobs", "POST /jobs/{jobId}/cancel", "POST /submit-job-request"];
/** Their machine twins (IAM, SigV4). */
const MACHINE_ROUTE_NAMES = COGNITO_ROUTES.map((r) => r.replace(" /", " /machine/"));

/** The methods of `routes`. */
function methodsOf(routes: string[]): [string, Block][] {
  return methods().filter(([route]) => routes.includes(route));
}

test("the API has exactly its five Cognito routes and their five machine twins", () => {
  expect(methods().map(([route]) => route).sort()).toEqual([...COGNITO_ROUTES, ...MACHINE_ROUTE_NAMES].sort());
  expect([...MACHINE_ROUTE_NAMES].sort()).toEqual([
    "GET /machine/count",
    "GET /machine/job-status/{jobId}",
    "GET /machine/jobs",
    "POST /machine/jobs/{jobId}/cancel",
    "POST /machine/submit-job-request",
  ]);
});

test("MACHINE_ROUTES are JOB_API_ROUTES under machine/, route for route", () => {
  expect(Object.keys(MACHINE_ROUTES)).toEqual(Object.keys(JOB_API_ROUTES));
  for (const [name, route] of Object.entries(JOB_API_ROUTES)) {
    expect(MACHINE_ROUTES[name as keyof typeof MACHINE_ROUTES]).toEqual({ ...route, path: `machine/${route.path}` });
  }
});

test("the authorizer's ALLOWED_ROUTES are exactly the Cognito methods created, no machine route", () => {
  const allowed = lambdaFor(app.json, "authorizer")[1].environment.variables.ALLOWED_ROUTES as string;
  const pattern = (route: string) => route.replace(" /", "/").replace(/\{[^}]+\}/g, "*");
  const created = methods()
    .filter(([, m]) => m.authorization === "CUSTOM")
    .map(([route]) => pattern(route));
  expect(allowed.split(" ").sort()).toEqual(created.sort());
  expect(allowed.split(" ").sort()).toEqual(COGNITO_ROUTES.map(pattern).sort());
  expect(allowed).not.toContain("machine");
});

describe("TOKEN authorizer", () => {
  let authorizerName: string;
  let authorizer: Block;
  beforeAll(() => {
    [authorizerName, authorizer] = theResource(app.json, "aws_api_gateway_authorizer");
  });

  test("is the authorizer function, reading the Authorization header, its answers cached 30 s", () => {
    const [functionName] = lambdaFor(app.json, "authorizer");
    expect(app.text).toHaveResourceWithProperties(ApiGatewayAuthorizer, {
      type: "TOKEN",
      authorizer_uri: ref("aws_lambda_function", functionName, "invoke_arn"),
      identity_source: "method.request.header.Authorization",
      authorizer_result_ttl_in_seconds: 30,
    });
  });

  test("an expired token stops working within the bound docs/api.md states, at most 60 s after exp", () => {
    // API Gateway keeps an Allow for the cache TTL: a token verified at
    // exp + leeway works until exp + leeway + TTL.
    const leeway = Number(lambdaFor(app.json, "authorizer")[1].environment.variables.JWT_LEEWAY_SECONDS);
    const bound = leeway + authorizer.authorizer_result_ttl_in_seconds;
    expect(leeway).toBe(5);
    expect(bound).toBeLessThanOrEqual(60);
    expect(API_DOC).toContain(`at most ${bound} s after its \`exp\``);
  });

  test("rejects anything but a JWT, with or without 'Bearer ', before invoking the function", () => {
    const pattern = new RegExp(authorizer.identity_validation_expression);
    expect(pattern.test("Bearer eyJh.eyJz.c2ln-_")).toBe(true);
    expect(pattern.test("eyJh.eyJz.c2ln")).toBe(true);
    expect(pattern.test("Bearer eyJh.eyJz")).toBe(false);
    expect(pattern.test("Basic dXNlcjpwdw==")).toBe(false);
    expect(pattern.test("Bearer a.b.c d")).toBe(false);
  });

  test("guards every Cognito method", () => {
    expect(methodsOf(COGNITO_ROUTES)).toHaveLength(5);
    for (const [, method] of methodsOf(COGNITO_ROUTES)) {
      expect(method.authorization).toBe("CUSTOM");
      expect(method.authorizer_id).toBe(ref("aws_api_gateway_authorizer", authorizerName, "id"));
    }
  });

  test("guards no machine method: those are AWS_IAM, without an authorizer", () => {
    expect(methodsOf(MACHINE_ROUTE_NAMES)).toHaveLength(5);
    for (const [, method] of methodsOf(MACHINE_ROUTE_NAMES)) {
      expect(method.authorization).toBe("AWS_IAM");
      expect(method.authorizer_id).toBeUndefined();
    }
  });

  test("may be invoked by this API's authorizer only", () => {
    const [functionName] = lambdaFor(app.json, "authorizer");
    const [, permission] = theResource(
      app.json,
      "aws_lambda_permission",
      (p) => p.function_name === ref("aws_lambda_function", functionName, "function_name"),
    );
    expect(permission).toMatchObject({
      action: "lambda:InvokeFunction",
      principal: "apigateway.amazonaws.com",
      source_arn: `${ref("aws_api_gateway_rest_api", apiName, "execution_arn")}/authorizers/${ref("aws_api_gateway_authorizer", authorizerName, "id")}`,
    });
  });
});

describe("the optional headers of a submit", () => {
  test("Job-Callback-Url (completion webhooks, the callbackUrl attribute) and Idempotency-Key", () => {
    expect(CALLBACK_URL_HEADER).toBe("Job-Callback-Url");
    expect(CALLBACK_URL_MESSAGE_ATTRIBUTE).toBe("callbackUrl");
    expect(IDEMPOTENCY_KEY_HEADER).toBe("Idempotency-Key");
    expect(JOB_ID_MESSAGE_ATTRIBUTE).toBe("jobId");
  });

  test.each(["POST /submit-job-request", "POST /machine/submit-job-request"])(
    "%s declares both headers, optional (false)",
    (route) => {
      const [[, method]] = methodsOf([route]);
      expect(method.request_parameters).toEqual({
        "method.request.header.Job-Callback-Url": false,
        "method.request.header.Idempotency-Key": false,
      });
    },
  );

  test("no other method takes them", () => {
    const others = methods().filter(([route]) => !route.endsWith("/submit-job-request"));
    expect(others.length).toBeGreaterThan(0);
    for (const [, method] of others) expect(method.request_parameters).toBeUndefined();
  });
});

describe.each([
  ["POST /submit-job-request", "POST/submit-job-request"],
  ["POST /machine/submit-job-request", "POST/machine/submit-job-request"],
])("%s", (route, pattern) => {
  test("proxies to the job-commands function (which records the job and sends its message)", () => {
    const [functionName] = lambdaFor(app.json, "job-commands");
    const integration = integrationOf(route);
    expect(integration).toMatchObject({
      type: "AWS_PROXY",
      integration_http_method: "POST",
      uri: ref("aws_lambda_function", functionName, "invoke_arn"),
    });
    // Nothing of the former SQS service integration: no role, no template, no passthrough setting.
    expect(integration.credentials).toBeUndefined();
    expect(integration.request_templates).toBeUndefined();
    expect(integration.request_parameters).toBeUndefined();
    expect(integration.passthrough_behavior).toBeUndefined();
  });

  test("job-commands may be invoked by this API for this route only", () => {
    const [functionName] = lambdaFor(app.json, "job-commands");
    const executionArn = ref("aws_api_gateway_rest_api", apiName, "execution_arn");
    const [, permission] = theResource(
      app.json,
      "aws_lambda_permission",
      (p) =>
        p.function_name === ref("aws_lambda_function", functionName, "function_name") &&
        p.source_arn === `${executionArn}/*/${pattern}`,
    );
    expect(permission).toMatchObject({ action: "lambda:InvokeFunction", principal: "apigateway.amazonaws.com" });
  });

  test("validates the body with the API's one model and validator", () => {
    const [[, method]] = methodsOf([route]);
    const [modelName] = theResource(app.json, "aws_api_gateway_model");
    const [validatorName] = theResource(app.json, "aws_api_gateway_request_validator");
    expect(method.request_models).toEqual({ "application/json": ref("aws_api_gateway_model", modelName, "name") });
    expect(method.request_validator_id).toBe(ref("aws_api_gateway_request_validator", validatorName, "id"));
  });
});

describe("no function-less path to the queue is left in the API", () => {
  test("every integration is a Lambda proxy, none an AWS service integration", () => {
    const integrations = resourcesOf(app.json, "aws_api_gateway_integration").map(([, i]) => i);
    expect(integrations).toHaveLength(10);
    for (const integration of integrations) {
      expect(integration.type).toBe("AWS_PROXY");
      expect(String(integration.uri)).not.toContain(":sqs:");
    }
  });

  test("no method or integration responses (proxy integrations answer as the function does)", () => {
    expect(resourcesOf(app.json, "aws_api_gateway_method_response")).toEqual([]);
    expect(resourcesOf(app.json, "aws_api_gateway_integration_response")).toEqual([]);
  });

  test("no role in the app stack that API Gateway assumes (the former `<api>-sqs` role is gone)", () => {
    const apiGatewayRoles = resourcesOf(app.json, "aws_iam_role")
      .filter(([, r]) => r.assume_role_policy.includes("apigateway.amazonaws.com"))
      .map(([, r]) => r.name);
    expect(apiGatewayRoles).toEqual([]);
    expect(resourcesOf(app.json, "aws_iam_role").filter(([, r]) => r.name === "jobs-dev-api-sqs")).toEqual([]);
  });

  test("the only sender to the jobs queue is job-commands", () => {
    const [, mapping] = mappingFor(app.json, "job-processor");
    const senders = resourcesOf(app.json, "aws_iam_role_policy")
      .filter(([, p]) =>
        JSON.parse(p.policy).Statement.some(
          (s: Block) => [s.Action].flat().includes("sqs:SendMessage") && [s.Resource].flat().includes(mapping.event_source_arn),
        ),
      )
      .map(([, p]) => referencedName(p.role, "aws_iam_role"));
    const commandsRole = referencedName(lambdaFor(app.json, "job-commands")[1].role, "aws_iam_role");
    expect(senders).toEqual([commandsRole]);
  });
});

describe.each([
  ["GET /job-status/{jobId}", "GET/job-status/*"],
  ["GET /jobs", "GET/jobs"],
  ["GET /count", "GET/count"],
])("%s", (route, pattern) => {
  test("proxies to the job-status function", () => {
    const [functionName] = lambdaFor(app.json, "job-status");
    expect(integrationOf(route)).toMatchObject({
      type: "AWS_PROXY",
      integration_http_method: "POST",
      uri: ref("aws_lambda_function", functionName, "invoke_arn"),
    });
  });

  test("the job-status function may be invoked by this API's route", () => {
    const [functionName] = lambdaFor(app.json, "job-status");
    const sources = resourcesOf(app.json, "aws_lambda_permission")
      .filter(([, p]) => p.function_name === ref("aws_lambda_function", functionName, "function_name"))
      .map(([, p]) => {
        expect(p).toMatchObject({ action: "lambda:InvokeFunction", principal: "apigateway.amazonaws.com" });
        return p.source_arn;
      });
    const executionArn = ref("aws_api_gateway_rest_api", apiName, "execution_arn");
    // One permission per read route and per machine twin, each for that route only.
    expect(sources.sort()).toEqual(
      ["GET/count", "GET/job-status/*", "GET/jobs", "GET/machine/count", "GET/machine/job-status/*", "GET/machine/jobs"]
        .map((p) => `${executionArn}/*/${p}`)
        .sort(),
    );
    expect(sources).toContain(`${executionArn}/*/${pattern}`);
  });
});

describe.each([
  ["POST /jobs/{jobId}/cancel", "POST/jobs/*/cancel"],
  ["POST /machine/jobs/{jobId}/cancel", "POST/machine/jobs/*/cancel"],
])("%s", (route, pattern) => {
  test("proxies to the job-commands function, which only the submits and cancels may invoke", () => {
    const [functionName] = lambdaFor(app.json, "job-commands");
    expect(integrationOf(route)).toMatchObject({
      type: "AWS_PROXY",
      integration_http_method: "POST",
      uri: ref("aws_lambda_function", functionName, "invoke_arn"),
    });
    const executionArn = ref("aws_api_gateway_rest_api", apiName, "execution_arn");
    const sources = resourcesOf(app.json, "aws_lambda_permission")
      .filter(([, p]) => p.function_name === ref("aws_lambda_function", functionName, "function_name"))
      .map(([, p]) => p.source_arn);
    expect(sources.sort()).toEqual(
      ["POST/jobs/*/cancel", "POST/machine/jobs/*/cancel", "POST/machine/submit-job-request", "POST/submit-job-request"]
        .map((p) => `${executionArn}/*/${p}`)
        .sort(),
    );
    expect(sources).toContain(`${executionArn}/*/${pattern}`);
  });

  test("takes no body, so it has no body validator (the function checks the id)", () => {
    const [, method] = methodsOf([route])[0];
    expect(method.request_validator_id).toBeUndefined();
    expect(method.request_models).toBeUndefined();
  });
});

describe.each([
  ["GET /machine/job-status/{jobId}", "GET/machine/job-status/*"],
  ["GET /machine/jobs", "GET/machine/jobs"],
  ["GET /machine/count", "GET/machine/count"],
])("machine route %s", (route, pattern) => {
  test("proxies to the job-status function, like its Cognito twin", () => {
    const [functionName] = lambdaFor(app.json, "job-status");
    expect(integrationOf(route)).toMatchObject({
      type: "AWS_PROXY",
      integration_http_method: "POST",
      uri: ref("aws_lambda_function", functionName, "invoke_arn"),
    });
    expect(integrationOf(route).uri).toBe(integrationOf(route.replace("/machine", "")).uri);
  });

  test("has its own permission, for this machine path only", () => {
    const [functionName] = lambdaFor(app.json, "job-status");
    const executionArn = ref("aws_api_gateway_rest_api", apiName, "execution_arn");
    const [, permission] = theResource(
      app.json,
      "aws_lambda_permission",
      (p) =>
        p.function_name === ref("aws_lambda_function", functionName, "function_name") &&
        p.source_arn === `${executionArn}/*/${pattern}`,
    );
    expect(permission).toMatchObject({ action: "lambda:InvokeFunction", principal: "apigateway.amazonaws.com" });
  });
});

describe("POST /machine/submit-job-request", () => {
  test("has the same integration as its Cognito twin (the caller's identity reaches the function in the proxy event)", () => {
    const shared = (i: Block) => Object.fromEntries(Object.entries(i).filter(([k]) => !["resource_id", "depends_on"].includes(k)));
    expect(shared(integrationOf("POST /machine/submit-job-request"))).toEqual(shared(integrationOf("POST /submit-job-request")));
  });

  test("validates the body with the same model and validator as the Cognito submit (one of each in the API)", () => {
    const [[, machine]] = methodsOf(["POST /machine/submit-job-request"]);
    const [[, cognito]] = methodsOf(["POST /submit-job-request"]);
    expect(machine.request_models).toEqual(cognito.request_models);
    expect(machine.request_validator_id).toBe(cognito.request_validator_id);
    expect(resourcesOf(app.json, "aws_api_gateway_model")).toHaveLength(1);
    expect(resourcesOf(app.json, "aws_api_gateway_request_validator")).toHaveLength(1);
  });
});

describe("the machine client role", () => {
  let roleName: string;
  let role: Block;
  beforeAll(() => {
    [roleName, role] = theResource(app.json, "aws_iam_role", (r) => r.name === "jobs-dev-api-client");
  });

  test("may be assumed by principals of this account only (the account delegates to its IAM policies)", () => {
    const [accountName] = Object.entries(app.json.data!.aws_caller_identity)[0];
    expect(JSON.parse(role.assume_role_policy)).toEqual({
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Action: "sts:AssumeRole",
          Principal: { AWS: `arn:aws:iam::\${data.aws_caller_identity.${accountName}.account_id}:root` },
        },
      ],
    });
  });

  test("may invoke the machine routes of this API's stage and nothing else", () => {
    const executionArn = ref("aws_api_gateway_rest_api", apiName, "execution_arn");
    expect(statementsOfRole(app.json, roleName)).toEqual([
      { Effect: "Allow", Action: ["execute-api:Invoke"], Resource: [`${executionArn}/api/*/machine/*`] },
    ]);
    const [, stage] = theResource(app.json, "aws_api_gateway_stage");
    expect(stage.stage_name).toBe("api");
    // No managed policy either.
    expect(role.managed_policy_arns).toBeUndefined();
    expect(
      resourcesOf(app.json, "aws_iam_role_policy_attachment").filter(([, a]) => a.role === ref("aws_iam_role", roleName, "name")),
    ).toEqual([]);
  });

  test("is the stack's output machineClientRoleArn, next to machineApiUrl", () => {
    const [stageName] = theResource(app.json, "aws_api_gateway_stage");
    expect(app.json.output!.machineClientRoleArn.value).toBe(ref("aws_iam_role", roleName, "arn"));
    expect(app.json.output!.machineApiUrl.value).toBe(`${ref("aws_api_gateway_stage", stageName, "invoke_url")}/machine`);
  });
});

/** docs/api.md, whose "Bounds" and status tables state what the stack enforces. */
const API_DOC = fs.readFileSync(path.join(REPO_ROOT, "docs", "api.md"), "utf8");
const OPENAPI = fs.readFileSync(path.join(REPO_ROOT, "docs", "openapi.yaml"), "utf8");

describe.each(["AUTHORIZER_FAILURE", "AUTHORIZER_CONFIGURATION_ERROR"])(
  "when the authorizer cannot decide (%s)",
  (type) => {
    let response: Block;
    beforeAll(() => {
      [, response] = theResource(app.json, "aws_api_gateway_gateway_response", (r) => r.response_type === type);
    });

    test("the caller gets 503 with Retry-After, not API Gateway's 500 with a null message", () => {
      expect(response.status_code).toBe("503");
      expect(response.response_parameters).toEqual({ "gatewayresponse.header.Retry-After": "'5'" });
    });

    test("the body is static JSON with a message and a hint saying the token is not at fault", () => {
      const template: string = response.response_templates["application/json"];
      expect(Object.keys(response.response_templates)).toEqual(["application/json"]);
      // No `$context` variable: nothing can render as null.
      expect(template).not.toMatch(/[$#]|%\{/);
      const body = JSON.parse(template);
      expect(Object.keys(body)).toEqual(["message", "hint"]);
      expect(body.message).toBe("Authorization is temporarily unavailable; retry in a few seconds.");
      expect(body.hint).toMatch(/not a problem with your token/);
    });

    test("docs/api.md and the OpenAPI document list the 503", () => {
      expect(API_DOC).toContain('| 503 | any route: the authorizer could not check the token');
      expect(OPENAPI).toContain("AuthorizerUnavailable");
    });
  },
);

describe("the request body limit is SQS's, attributes included, and stated in bytes", () => {
  // SQS counts each attribute's name, type and value toward the limit
  // (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_MessageAttributeValue.html).
  // Every message carries `owner` and `jobId` (a 36-character UUID). The
  // callbackUrl attribute is there only with a Job-Callback-Url header: the
  // limits are for a submit without it (with it, the URL, `callbackUrl` and `String` come off).
  const jobId = "String".length + "jobId".length + 36;
  let queueBytes: number;
  beforeAll(() => {
    const [, mapping] = mappingFor(app.json, "job-processor");
    const [, queue] = theResource(
      app.json,
      "aws_sqs_queue",
      (_q, name) => mapping.event_source_arn === ref("aws_sqs_queue", name, "arn"),
    );
    queueBytes = queue.max_message_size;
  });

  test("job-commands gets the jobs queue's maximum message size as MAX_MESSAGE_BYTES", () => {
    expect(queueBytes).toBe(256 * 1024);
    expect(lambdaFor(app.json, "job-commands")[1].environment.variables.MAX_MESSAGE_BYTES).toBe(String(queueBytes));
  });

  test("the jobId attribute takes 47 bytes", () => {
    expect(jobId).toBe(47);
  });

  test("Cognito submit: the queue's 256 KiB less owner (a 36-character sub) and jobId leave 262,050 bytes", () => {
    const limit = queueBytes - ("owner".length + "String".length + 36) - jobId;
    expect(limit).toBe(262_050);
    expect(maxJobRequestBytes(queueBytes)).toBe(limit);
    expect(tooLargeMessage(limit)).toBe(
      "The job queue rejected the request: the body must be valid text of at most 262,050 bytes (UTF-8).",
    );
  });

  test("machine submit: less an assumed-role session ARN as owner (at most 168 bytes) and jobId: 261,918 bytes", () => {
    // arn:aws:sts::<12 digits>:assumed-role/<role, at most 64>/<session, at most 64>
    // (IAM quotas; AssumeRole's RoleSessionName): owner + String + 168 = 179.
    const sessionArn = `arn:aws:sts::${"1".repeat(12)}:assumed-role/${"r".repeat(64)}/${"s".repeat(64)}`;
    expect(sessionArn.length).toBe(168);
    const limit = queueBytes - ("owner".length + "String".length + sessionArn.length) - jobId;
    expect(limit).toBe(261_918);
    expect(maxMachineJobRequestBytes(queueBytes)).toBe(limit);
    expect(tooLargeMessage(limit)).toBe(
      "The job queue rejected the request: the body must be valid text of at most 261,918 bytes (UTF-8).",
    );
  });

  test("docs/api.md and the OpenAPI document state the same limits", () => {
    for (const limit of ["262,050 bytes", "261,918 bytes"]) {
      expect(API_DOC).toContain(limit);
      expect(OPENAPI).toContain(limit);
    }
    for (const stale of ["at most 256 KiB", "over 256 KiB", "larger than 256 KiB", "262,097 bytes", "261,965 bytes"]) {
      expect(API_DOC).not.toContain(stale);
      expect(OPENAPI).not.toContain(stale);
    }
  });
});

test.each([
  ["UNSUPPORTED_MEDIA_TYPE", "415"],
  ["DEFAULT_4XX", undefined],
  ["DEFAULT_5XX", undefined],
])("API Gateway's own %s error has a JSON body with its message", (type, status) => {
  const [, response] = theResource(app.json, "aws_api_gateway_gateway_response", (r) => r.response_type === type);
  expect(response.status_code).toBe(status);
  expect(response.response_templates).toEqual({ "application/json": '{"message":$context.error.messageString}' });
  expect(app.text).toHaveResourceWithProperties(ApiGatewayGatewayResponse, { response_type: type });
});

describe("authorization and routing errors keep API Gateway's message and add a hint a person can act on", () => {
  /** The body API Gateway sends for `type`, with `$context.error.messageString` rendered as `message`. */
  function body(type: string, message: string): Record<string, unknown> {
    const [, response] = theResource(app.json, "aws_api_gateway_gateway_response", (r) => r.response_type === type);
    const template: string = response.response_templates["application/json"];
    expect(Object.keys(response.response_templates)).toEqual(["application/json"]);
    // Static text and the one variable: no other reference, no directive, no Terraform template.
    expect(template.match(/\$[A-Za-z!{][A-Za-z.]*/g)).toEqual(["$context.error.messageString"]);
    expect(template).not.toMatch(/#[A-Za-z{#*]|%\{/);
    return JSON.parse(template.replace("$context.error.messageString", JSON.stringify(message)));
  }
  const routes = Object.values(JOB_API_ROUTES).map((r) => `${r.httpMethod} /${r.path}`);
  const machineRoutes = Object.values(MACHINE_ROUTES).map((r) => `${r.httpMethod} /${r.path}`);

  test.each([
    ["UNAUTHORIZED", "401", "Unauthorized"],
    ["ACCESS_DENIED", "403", "User is not authorized to access this resource"],
    ["MISSING_AUTHENTICATION_TOKEN", "403", "Missing Authentication Token"],
    [
      "INVALID_SIGNATURE",
      "403",
      "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
    ],
    ["EXPIRED_TOKEN", "403", "Signature expired: 20260101T000000Z is now earlier than 20260101T000500Z"],
  ])("%s: status %s, message unchanged, and a hint", (type, status, message) => {
    const [, response] = theResource(app.json, "aws_api_gateway_gateway_response", (r) => r.response_type === type);
    expect(response.status_code).toBe(status);
    const rendered = body(type, message);
    expect(Object.keys(rendered)).toEqual(["message", "hint"]);
    expect(rendered.message).toBe(message);
    expect(typeof rendered.hint).toBe("string");
  });

  test("401 says what to send: the ID token (not the access token) of the pool in the Authorization header, raw or Bearer", () => {
    expect(body("UNAUTHORIZED", "Unauthorized").hint).toBe(
      "Send the ID token (IdToken) of a Cognito sign-in to this API's user pool in the Authorization header, raw or as Bearer <token>; " +
        "the token sent is missing, malformed, expired, or an access token.",
    );
  });

  test("an unknown route or method, or an unsigned machine call, lists every route the API serves and how to call it", () => {
    expect(routes).toEqual([
      "POST /submit-job-request",
      "GET /job-status/{jobId}",
      "GET /jobs",
      "GET /count",
      "POST /jobs/{jobId}/cancel",
    ]);
    expect(machineRoutes).toEqual([
      "POST /machine/submit-job-request",
      "GET /machine/job-status/{jobId}",
      "GET /machine/jobs",
      "GET /machine/count",
      "POST /machine/jobs/{jobId}/cancel",
    ]);
    expect(body("MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token").hint).toBe(
      "No such route or method, or a machine route called without a SigV4 signature. " +
        "The API serves POST /submit-job-request, GET /job-status/{jobId}, GET /jobs, GET /count and " +
        "POST /jobs/{jobId}/cancel with a Cognito ID token, " +
        "and POST /machine/submit-job-request, GET /machine/job-status/{jobId}, GET /machine/jobs, GET /machine/count " +
        "and POST /machine/jobs/{jobId}/cancel signed with SigV4 (service execute-api).",
    );
  });

  test("403 ACCESS_DENIED names the routes each kind of caller may call and what to do", () => {
    const hint = body("ACCESS_DENIED", "User is not authorized to access this resource").hint as string;
    for (const route of [...routes, ...machineRoutes]) expect(hint).toContain(route);
    expect(hint).toMatch(/Sign in again/);
    // An IAM principal: execute-api:Invoke, granted by the client role of the output.
    expect(hint).toContain("execute-api:Invoke");
    expect(hint).toContain("machineClientRoleArn");
  });

  test.each(["INVALID_SIGNATURE", "EXPIRED_TOKEN"])(
    "403 %s tells a SigV4 client what to check: service execute-api, the region, the client role's session, the clock",
    (type) => {
      const hint = body(type, "Signature expired").hint as string;
      expect(hint).toContain("execute-api");
      expect(hint).toContain("region");
      expect(hint).toContain("machineClientRoleArn");
      expect(hint).toContain("5 minutes");
    },
  );
});

describe("deployment and stage", () => {
  test("a change to any method, integration or response redeploys, new before old", () => {
    const [, deployment] = theResource(app.json, "aws_api_gateway_deployment");
    expect(deployment.lifecycle).toEqual({ create_before_destroy: true });
    const trigger: string = deployment.triggers.redeployment;
    expect(trigger).toMatch(/^\$\{sha1\(jsonencode\(\[.*\]\)\)\}$/);
    const definition = [
      "aws_api_gateway_resource",
      "aws_api_gateway_method",
      "aws_api_gateway_integration",
      "aws_api_gateway_method_response",
      "aws_api_gateway_integration_response",
      "aws_api_gateway_authorizer",
      "aws_api_gateway_gateway_response",
      "aws_api_gateway_model",
      "aws_api_gateway_request_validator",
    ].flatMap((type) => resourcesOf(app.json, type).map(([name]) => `${type}.${name}`));
    const hashed = trigger.slice("${sha1(jsonencode([".length, -"]))}".length).split(", ");
    expect(hashed.sort()).toEqual(definition.sort());
  });

  test("the stage `api` serves the deployment with X-Ray tracing", () => {
    const [deploymentName] = theResource(app.json, "aws_api_gateway_deployment");
    expect(app.text).toHaveResourceWithProperties(ApiGatewayStage, {
      stage_name: "api",
      deployment_id: ref("aws_api_gateway_deployment", deploymentName, "id"),
      rest_api_id: ref("aws_api_gateway_rest_api", apiName, "id"),
      xray_tracing_enabled: true,
    });
  });

  test("the methods' integrations all belong to this API", () => {
    expect(app.text).toHaveResourceWithProperties(ApiGatewayIntegration, {
      rest_api_id: ref("aws_api_gateway_rest_api", apiName, "id"),
    });
    for (const [, integration] of resourcesOf(app.json, "aws_api_gateway_integration")) {
      expect(integration.rest_api_id).toBe(ref("aws_api_gateway_rest_api", apiName, "id"));
    }
  });
});

describe("request validation on submit", () => {
  let submit: Block;
  beforeAll(() => {
    submit = methods().find(([route]) => route === "POST /submit-job-request")![1];
  });

  test("a JSON-schema model requires the body to be a JSON object", () => {
    const modelName = referencedName(submit.request_models["application/json"], "aws_api_gateway_model");
    const model = app.json.resource!.aws_api_gateway_model[modelName];
    expect(model).toMatchObject({
      rest_api_id: ref("aws_api_gateway_rest_api", apiName, "id"),
      content_type: "application/json",
    });
    expect(submit.request_models["application/json"]).toBe(ref("aws_api_gateway_model", modelName, "name"));
    expect(JSON.parse(model.schema)).toEqual({ $schema: "http://json-schema.org/draft-04/schema#", type: "object" });
  });

  test("the method validates the body, so a non-object body is refused before job-commands is invoked", () => {
    const validatorName = referencedName(submit.request_validator_id, "aws_api_gateway_request_validator");
    expect(app.json.resource!.aws_api_gateway_request_validator[validatorName]).toMatchObject({
      rest_api_id: ref("aws_api_gateway_rest_api", apiName, "id"),
      validate_request_body: true,
    });
  });

  test("the refusal is a JSON 400 whose template uses only $context.error values", () => {
    const [, response] = theResource(
      app.json,
      "aws_api_gateway_gateway_response",
      (r) => r.response_type === "BAD_REQUEST_BODY",
    );
    expect(response.status_code).toBe("400");
    const template: string = response.response_templates["application/json"];
    for (const variable of template.match(/\$[a-zA-Z.]+/g) ?? []) expect(variable).toMatch(/^\$context\.error\./);
    // With the one variable replaced by a quoted string, the body is a JSON object with a message.
    const body = JSON.parse(template.replace("$context.error.messageString", '"Invalid request body"'));
    expect(body.message).toMatch(/must be a JSON object/);
  });
});

describe("stage logs and limits", () => {
  test("JSON access logs go to an encrypted log group kept 30 days", () => {
    const [, stage] = theResource(app.json, "aws_api_gateway_stage");
    const groupName = referencedName(stage.access_log_settings.destination_arn, "aws_cloudwatch_log_group");
    const group = app.json.resource!.aws_cloudwatch_log_group[groupName];
    expect(group.retention_in_days).toBe(30);
    expect(group.kms_key_id).toMatch(/^\$\{aws_kms_key\./);
    const format = JSON.parse(stage.access_log_settings.format);
    expect(format).toMatchObject({ requestId: "$context.requestId", status: "$context.status" });
  });

  test("every method of the stage is throttled and sends detailed metrics", () => {
    const [, settings] = theResource(app.json, "aws_api_gateway_method_settings");
    expect(settings.method_path).toBe("*/*");
    expect(settings.settings).toMatchObject({ metrics_enabled: true });
    expect(settings.settings.throttling_rate_limit).toBeGreaterThan(0);
    expect(settings.settings.throttling_burst_limit).toBeGreaterThan(0);
  });
});
