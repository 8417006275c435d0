import { Fn, TerraformResource } from "cdktn";
import { Construct } from "constructs";
import { ApiGatewayAuthorizer } from "@cdktn/provider-aws/lib/api-gateway-authorizer";
import { ApiGatewayDeployment } from "@cdktn/provider-aws/lib/api-gateway-deployment";
import { ApiGatewayGatewayResponse } from "@cdktn/provider-aws/lib/api-gateway-gateway-response";
import { ApiGatewayIntegration } from "@cdktn/provider-aws/lib/api-gateway-integration";
import { ApiGatewayMethod } from "@cdktn/provider-aws/lib/api-gateway-method";
import { ApiGatewayMethodSettings } from "@cdktn/provider-aws/lib/api-gateway-method-settings";
import { ApiGatewayModel } from "@cdktn/provider-aws/lib/api-gateway-model";
import { ApiGatewayRequestValidator } from "@cdktn/provider-aws/lib/api-gateway-request-validator";
import { ApiGatewayResource } from "@cdktn/provider-aws/lib/api-gateway-resource";
import { ApiGatewayRestApi } from "@cdktn/provider-aws/lib/api-gateway-rest-api";
import { ApiGatewayStage } from "@cdktn/provider-aws/lib/api-gateway-stage";
import { CloudwatchLogGroup } from "@cdktn/provider-aws/lib/cloudwatch-log-group";
import { LambdaFunction } from "@cdktn/provider-aws/lib/lambda-function";
import { LambdaPermission } from "@cdktn/provider-aws/lib/lambda-permission";
import { skipCheck } from "./checkov";
import { MachineClientRole } from "./machine-client-role";

export interface Route {
  readonly httpMethod: "GET" | "POST";
  /** Below the stage, without a leading slash; `{name}` is a path parameter. */
  readonly path: string;
}

/**
 * The routes of Cognito users (the token authorizer). The methods are created
 * from this list and the authorizer's ALLOWED_ROUTES is derived from it, so
 * the two cannot drift.
 */
export const JOB_API_ROUTES = {
  submitJob: { httpMethod: "POST", path: "submit-job-request" },
  jobStatus: { httpMethod: "GET", path: "job-status/{jobId}" },
  listJobs: { httpMethod: "GET", path: "jobs" },
  count: { httpMethod: "GET", path: "count" },
  cancelJob: { httpMethod: "POST", path: "jobs/{jobId}/cancel" },
} as const satisfies Record<string, Route>;

/** The routes the job-status function serves (Lambda proxy). */
export const READ_ROUTES = ["jobStatus", "listJobs", "count"] as const satisfies readonly RouteName[];

/**
 * The routes the job-commands function serves (Lambda proxy): submit (it
 * records the job, claims the optional Idempotency-Key and sends the job's
 * message to the queue itself) and cancel.
 */
export const COMMAND_ROUTES = ["submitJob", "cancelJob"] as const satisfies readonly RouteName[];

type RouteName = keyof typeof JOB_API_ROUTES;

/** The path prefix of the machine routes: `machine/<route>`. */
export const MACHINE_PATH_PREFIX = "machine";

/**
 * The routes of machine clients: the same operations as JOB_API_ROUTES under
 * `machine/`, authorized by IAM (SigV4, AWS_IAM) instead of the token
 * authorizer. Not in ALLOWED_ROUTES: a Cognito token may not call them.
 */
export const MACHINE_ROUTES = {
  submitJob: { httpMethod: "POST", path: "machine/submit-job-request" },
  jobStatus: { httpMethod: "GET", path: "machine/job-status/{jobId}" },
  listJobs: { httpMethod: "GET", path: "machine/jobs" },
  count: { httpMethod: "GET", path: "machine/count" },
  cancelJob: { httpMethod: "POST", path: "machine/jobs/{jobId}/cancel" },
} as const satisfies Record<RouteName, Route>;

/**
 * The message attribute that carries the submitter: a Cognito `sub`, or the
 * IAM caller's ARN on the machine route. job-commands sets it; the processor
 * records it, and message attributes survive a DLQ redrive.
 */
export const OWNER_MESSAGE_ATTRIBUTE = "owner";

/** The optional request header of a submit that names the job's completion webhook URL. */
export const CALLBACK_URL_HEADER = "Job-Callback-Url";

/**
 * The message attribute that carries it to the processor, only when the
 * header is there and not empty. SQS counts this attribute toward the
 * message size too: the body limits below are for a submit without the
 * header, and with it the URL's length + `callbackUrl` (11) + `String` (6)
 * bytes come off them.
 */
export const CALLBACK_URL_MESSAGE_ATTRIBUTE = "callbackUrl";

/**
 * The optional request header of a submit that makes it idempotent: a retry
 * with the same key (and the same body) within 24 hours gets the first
 * submit's job instead of a new one. job-commands claims `<owner>#<key>` in
 * the idempotency table (idempotency-table.ts).
 */
export const IDEMPOTENCY_KEY_HEADER = "Idempotency-Key";

/**
 * The message attribute that carries the job's id (a UUID job-commands
 * chooses and records before it sends the message), on every message.
 */
export const JOB_ID_MESSAGE_ATTRIBUTE = "jobId";

/** A job id is a UUID: 36 bytes. */
const JOB_ID_BYTES = 36;

/**
 * What the `jobId` attribute adds to a message's size. SQS counts every part
 * of a message attribute, "including Name, Type, and Value", toward the
 * queue's maximum message size, in bytes
 * (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_MessageAttributeValue.html):
 * `jobId` (5) + `String` (6) + the UUID (36) = 47 bytes.
 */
export const JOB_ID_ATTRIBUTE_BYTES = JOB_ID_MESSAGE_ATTRIBUTE.length + "String".length + JOB_ID_BYTES;

/** A Cognito `sub` is a UUID: 36 bytes. */
const COGNITO_SUB_BYTES = 36;

/**
 * What the `owner` attribute adds to a message's size. SQS counts every part
 * of a message attribute, "including Name, Type, and Value", toward the
 * queue's maximum message size, in bytes
 * (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_MessageAttributeValue.html):
 * `owner` (5) + `String` (6) + the sub (36) = 47 bytes.
 */
export const OWNER_ATTRIBUTE_BYTES = OWNER_MESSAGE_ATTRIBUTE.length + "String".length + COGNITO_SUB_BYTES;

/**
 * The largest request body submit accepts, in bytes (UTF-8): what the queue's
 * maximum message size leaves once the owner and jobId attributes are
 * counted (262,144 - 47 - 47 = 262,050 for the jobs queue). job-commands
 * answers a larger body with 400 (tooLargeMessage), nothing recorded or
 * queued; it gets the queue's size as MAX_MESSAGE_BYTES.
 */
export function maxJobRequestBytes(queueMaxMessageBytes: number): number {
  return queueMaxMessageBytes - OWNER_ATTRIBUTE_BYTES - JOB_ID_ATTRIBUTE_BYTES;
}

/**
 * The longest owner of a machine job: the ARN of an assumed-role session,
 * `arn:aws:sts::<12-digit account>:assumed-role/<role name>/<session name>`
 * = 13 + 12 + 14 + 64 + 1 + 64 = 168 bytes. A role name has at most 64
 * characters (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html)
 * and AssumeRole's RoleSessionName 2 to 64
 * (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html).
 */
export const ASSUMED_ROLE_ARN_MAX_BYTES =
  "arn:aws:sts::".length + 12 + ":assumed-role/".length + 64 + "/".length + 64;

/**
 * What the `owner` attribute adds to a machine job's message, counted as SQS
 * counts it (name, type and value:
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_MessageAttributeValue.html):
 * `owner` (5) + `String` (6) + the session ARN (at most 168) = 179 bytes.
 */
export const MACHINE_OWNER_ATTRIBUTE_BYTES =
  OWNER_MESSAGE_ATTRIBUTE.length + "String".length + ASSUMED_ROLE_ARN_MAX_BYTES;

/**
 * The largest request body the machine submit accepts, in bytes (UTF-8):
 * smaller than the Cognito one by the longer owner, so that a body within it
 * is never refused for the caller's session name. The jobId attribute comes
 * off too (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_MessageAttributeValue.html):
 * 262,144 - 179 - 47 = 261,918 for the jobs queue.
 */
export function maxMachineJobRequestBytes(queueMaxMessageBytes: number): number {
  return queueMaxMessageBytes - MACHINE_OWNER_ATTRIBUTE_BYTES - JOB_ID_ATTRIBUTE_BYTES;
}

/** The 400 message for a body the queue would refuse: too large, or characters SQS does not allow. */
export function tooLargeMessage(maxBytes: number): string {
  return (
    "The job queue rejected the request: the body must be valid text of at most " +
    `${maxBytes.toLocaleString("en-US")} bytes (UTF-8).`
  );
}

interface RouteMethod {
  readonly route: Route;
  readonly method: ApiGatewayMethod;
}

/** Does the route take a job request as its body (the submits)? Only those are validated against its schema. */
function carriesJobRequest(route: Route): boolean {
  return route.path.endsWith(JOB_API_ROUTES.submitJob.path);
}

/** `METHOD/path` with each path parameter as `*`, e.g. `GET/job-status/*`. */
function routePattern(route: Route): string {
  return `${route.httpMethod}/${route.path.replace(/\{[^}]+\}/g, "*")}`;
}

/**
 * The authorizer's ALLOWED_ROUTES. Its policy must allow every route, not just
 * the one requested, because API Gateway caches it per token for all methods.
 */
export const ALLOWED_ROUTES = Object.values(JOB_API_ROUTES).map(routePattern).join(" ");

export const STAGE_NAME = "api";

/**
 * The stage's throttle on every method: a token bucket of `burstLimit`
 * requests refilled at `rateLimit` per second; requests over it get API
 * Gateway's 429 (retryable) before any function runs
 * (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-request-throttling.html).
 */
export const STAGE_THROTTLE = { rateLimit: 100, burstLimit: 200 } as const;

/** The stage's access log group of the API `apiName`. */
export function accessLogGroupName(apiName: string): string {
  return `/aws/apigateway/${apiName}`;
}

/**
 * The body `POST /submit-job-request` must have: a JSON object. API Gateway
 * answers anything else with 400 (BAD_REQUEST_BODY) before it reaches
 * job-commands. It validates only a body whose content type has a model
 * (`application/json`); with a Lambda proxy integration any other content
 * type reaches the function, which refuses it itself.
 */
export const JOB_REQUEST_SCHEMA = { $schema: "http://json-schema.org/draft-04/schema#", type: "object" };

/**
 * Not `$context.error.validationErrorString` inside the text: it holds
 * unescaped quotes (`allowed: ["object"]`) and gateway responses cannot
 * escape ($util is unavailable there), so it would break the JSON.
 */
export const BAD_REQUEST_BODY_TEMPLATE = {
  "application/json":
    '{"message":"Invalid request body: the job request must be a JSON object.","error":$context.error.messageString}',
};

/** One JSON line per request in the stage's access log. */
const ACCESS_LOG_FORMAT = JSON.stringify({
  requestId: "$context.requestId",
  xrayTraceId: "$context.xrayTraceId",
  requestTime: "$context.requestTimeEpoch",
  ip: "$context.identity.sourceIp",
  httpMethod: "$context.httpMethod",
  resourcePath: "$context.resourcePath",
  status: "$context.status",
  responseLength: "$context.responseLength",
  latencyMs: "$context.responseLatency",
  integrationStatus: "$context.integration.status",
  integrationError: "$context.integration.error",
  authorizerError: "$context.authorizer.error",
  principalId: "$context.authorizer.principalId",
  errorMessage: "$context.error.message",
});

// Checked by API Gateway before the authorizer runs: anything that is not a
// JWT (three base64url parts), optionally after "Bearer ", gets a 401 without
// invoking the function.
const TOKEN_PATTERN = "^(Bearer )?[-0-9A-Za-z_]+\\.[-0-9A-Za-z_]+\\.[-0-9A-Za-z_]+$";

// `$context.error.messageString` is already a quoted JSON string.
const ERROR_TEMPLATE = { "application/json": '{"message":$context.error.messageString}' };

/**
 * How long API Gateway caches the authorizer's answer per token. A token
 * verified just before its `exp` (plus the leeway) keeps working this long
 * after, so the leeway and this TTL together bound how long an expired token
 * still works (docs/api.md, "Bounds"). API Gateway caches Allow answers per
 * identity source for `authorizerResultTtlInSeconds`
 * (https://docs.aws.amazon.com/apigateway/latest/developerguide/configure-api-gateway-lambda-authorization.html);
 * the local gateway reads the same field.
 */
export const AUTHORIZER_CACHE_TTL_SECONDS = 30;

/** The authorizer's tolerance for clock skew on `exp` and `nbf` (its JWT_LEEWAY_SECONDS). */
export const TOKEN_LEEWAY_SECONDS = 5;

/** The longest an expired token still works: leeway + cache TTL. docs/api.md states it; at most 60 s. */
export const EXPIRED_TOKEN_BOUND_SECONDS = TOKEN_LEEWAY_SECONDS + AUTHORIZER_CACHE_TTL_SECONDS;

/**
 * What a caller gets when the authorizer cannot decide (its keys could not be
 * fetched, it failed, timed out or was throttled). API Gateway answers these
 * with AUTHORIZER_FAILURE or AUTHORIZER_CONFIGURATION_ERROR, by default 500
 * with `$context.error.messageString` null
 * (https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html):
 * a static message instead, and 503 with Retry-After, because nothing is wrong
 * with the caller's token.
 */
export const AUTHORIZER_UNAVAILABLE = {
  status: "503",
  retryAfterSeconds: 5,
  message: "Authorization is temporarily unavailable; retry in a few seconds.",
  hint:
    "The API could not check your token (for example, the user pool's signing keys could not be fetched). " +
    "This is not a problem with your token: send the same request again.",
} as const;

/** `A, B, C and D` of `METHOD /path` of each route. */
function routeList(routes: readonly Route[]): string {
  const names = routes.map((r) => `${r.httpMethod} /${r.path}`);
  return `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}

/** `POST /submit-job-request, GET /job-status/{jobId}, GET /jobs and GET /count`, from JOB_API_ROUTES. */
export const ROUTE_LIST = routeList(Object.values(JOB_API_ROUTES));

/** The same for MACHINE_ROUTES: `POST /machine/submit-job-request, ...`. */
export const MACHINE_ROUTE_LIST = routeList(Object.values(MACHINE_ROUTES));

/** What a SigV4 client should check when its signature is refused or expired. */
const SIGV4_CHECKS =
  "Sign the request with AWS Signature Version 4 for the service execute-api in the stack's region, " +
  "with the credentials of a session of the role named by the stack output machineClientRoleArn, " +
  "and keep the client's clock within 5 minutes of the real time.";

/**
 * What a person can do about API Gateway's own authorization and routing
 * errors: a `hint` next to the unchanged `message` (clients of the reference
 * implementation match on the message).
 */
export const GATEWAY_HINTS = {
  UNAUTHORIZED:
    "Send the ID token (IdToken) of a Cognito sign-in to this API's user pool in the Authorization header, raw or as Bearer <token>; " +
    "the token sent is missing, malformed, expired, or an access token.",
  ACCESS_DENIED:
    `This caller may not make this request. An ID token of this API's user pool may call ${ROUTE_LIST}. ` +
    "Sign in again for a fresh token. " +
    `An AWS IAM principal may call only ${MACHINE_ROUTE_LIST}, signed with SigV4, and needs execute-api:Invoke on them, ` +
    "which the role named by the stack output machineClientRoleArn grants: assume it and sign with that session.",
  MISSING_AUTHENTICATION_TOKEN:
    `No such route or method, or a machine route called without a SigV4 signature. The API serves ${ROUTE_LIST} ` +
    `with a Cognito ID token, and ${MACHINE_ROUTE_LIST} signed with SigV4 (service execute-api).`,
  INVALID_SIGNATURE: `The SigV4 signature or credentials of this request are not valid. ${SIGV4_CHECKS}`,
  EXPIRED_TOKEN: `The credentials or the signature of this request have expired. ${SIGV4_CHECKS} Assume the role again for fresh credentials.`,
} as const;

/**
 * A JSON body with API Gateway's message and a fixed hint. The hint is static
 * text inside a mapping template: no `$` or `#` (Velocity would read a
 * reference or directive) and no `%{` (Terraform would read a template).
 */
function hintTemplate(hint: string): Record<string, string> {
  if (/[$#]|%\{/.test(hint)) throw new Error(`a gateway response hint must be plain text: ${hint}`);
  return { "application/json": `{"message":$context.error.messageString,"hint":${JSON.stringify(hint)}}` };
}

/** A JSON body with a fixed message and hint (no `$` reference: nothing null can reach it). */
function staticTemplate(message: string, hint: string): Record<string, string> {
  for (const text of [message, hint]) {
    if (/[$#]|%\{/.test(text)) throw new Error(`a gateway response text must be plain text: ${text}`);
  }
  return { "application/json": JSON.stringify({ message, hint }) };
}

/** Every error API Gateway produces itself gets a JSON body with a "message". */
const GATEWAY_RESPONSES: {
  type: string;
  statusCode?: string;
  templates?: Record<string, string>;
  headers?: Record<string, string>;
}[] = [
  { type: "BAD_REQUEST_BODY", statusCode: "400", templates: BAD_REQUEST_BODY_TEMPLATE },
  { type: "UNAUTHORIZED", statusCode: "401", templates: hintTemplate(GATEWAY_HINTS.UNAUTHORIZED) },
  { type: "ACCESS_DENIED", statusCode: "403", templates: hintTemplate(GATEWAY_HINTS.ACCESS_DENIED) },
  // Also the answer for an unknown path, and for an unsigned call to a
  // machine (AWS_IAM) method: keeps the familiar "Missing Authentication
  // Token" wording, and says which routes exist.
  {
    type: "MISSING_AUTHENTICATION_TOKEN",
    statusCode: "403",
    templates: hintTemplate(GATEWAY_HINTS.MISSING_AUTHENTICATION_TOKEN),
  },
  // SigV4 callers of the machine routes: a signature that does not match, or
  // expired credentials or signature.
  { type: "INVALID_SIGNATURE", statusCode: "403", templates: hintTemplate(GATEWAY_HINTS.INVALID_SIGNATURE) },
  { type: "EXPIRED_TOKEN", statusCode: "403", templates: hintTemplate(GATEWAY_HINTS.EXPIRED_TOKEN) },
  { type: "UNSUPPORTED_MEDIA_TYPE", statusCode: "415" },
  // The authorizer could not decide: the same answer for both types, since
  // which one API Gateway picks for a failing function is not documented.
  ...["AUTHORIZER_FAILURE", "AUTHORIZER_CONFIGURATION_ERROR"].map((type) => ({
    type,
    statusCode: AUTHORIZER_UNAVAILABLE.status,
    templates: staticTemplate(AUTHORIZER_UNAVAILABLE.message, AUTHORIZER_UNAVAILABLE.hint),
    headers: { "gatewayresponse.header.Retry-After": `'${AUTHORIZER_UNAVAILABLE.retryAfterSeconds}'` },
  })),
  { type: "DEFAULT_4XX" },
  { type: "DEFAULT_5XX" },
];

export interface JobApiProps {
  /** The REST API's name, also the prefix of its machine client role's name. */
  readonly name: string;
  /** The TOKEN authorizer in front of every method. */
  readonly authorizerFunction: LambdaFunction;
  /** Serves `GET /job-status/{jobId}`, `GET /jobs` and `GET /count` (Lambda proxy). */
  readonly jobStatusFunction: LambdaFunction;
  /** Serves `POST /submit-job-request` and `POST /jobs/{jobId}/cancel` (Lambda proxy). */
  readonly jobCommandsFunction: LambdaFunction;
  readonly accountId: string;
  /** Encrypts the access log group. */
  readonly kmsKeyArn: string;
}

/** How a route's callers are authorized. */
type Authorization = "cognito" | "iam";

/**
 * The public REST API, every route a Lambda proxy: submit and cancel through
 * job-commands (which records a submitted job, claims its optional
 * Idempotency-Key and sends its message to the jobs queue), status, list
 * and count through job-status. The routes of JOB_API_ROUTES are behind the
 * Cognito token authorizer; the same operations under `machine/`
 * (MACHINE_ROUTES) are authorized by IAM (SigV4) for sessions of the client
 * role.
 */
export class JobApi extends Construct {
  readonly api: ApiGatewayRestApi;
  readonly stage: ApiGatewayStage;
  readonly accessLogGroup: CloudwatchLogGroup;
  /** The role machine clients assume to call the machine routes. */
  readonly machineClientRole: MachineClientRole;
  private readonly authorizer: ApiGatewayAuthorizer;
  private body?: { requestModels: Record<string, string>; requestValidatorId: string };
  /** Everything a deployment snapshots; a change to any of it redeploys. */
  private readonly definition: TerraformResource[] = [];
  private readonly pathResources = new Map<string, ApiGatewayResource>();

  constructor(scope: Construct, id: string, props: JobApiProps) {
    super(scope, id);

    this.api = new ApiGatewayRestApi(this, "api", {
      name: props.name,
      endpointConfiguration: { types: ["REGIONAL"] },
      // A replacement API exists before the old one goes (checkov CKV_AWS_237).
      lifecycle: { createBeforeDestroy: true },
    });

    this.authorizer = this.define(
      new ApiGatewayAuthorizer(this, "authorizer", {
        name: `${props.name}-cognito`,
        restApiId: this.api.id,
        type: "TOKEN",
        authorizerUri: props.authorizerFunction.invokeArn,
        identitySource: "method.request.header.Authorization",
        identityValidationExpression: TOKEN_PATTERN,
        authorizerResultTtlInSeconds: AUTHORIZER_CACHE_TTL_SECONDS,
      }),
    );
    new LambdaPermission(this, "authorizer-permission", {
      functionName: props.authorizerFunction.functionName,
      action: "lambda:InvokeFunction",
      principal: "apigateway.amazonaws.com",
      sourceArn: `${this.api.executionArn}/authorizers/${this.authorizer.id}`,
    });

    // The Cognito routes, and the machine routes: the same integrations,
    // IAM instead of the authorizer.
    const routeSets = [
      { routes: JOB_API_ROUTES, idPrefix: "", authorization: "cognito" },
      { routes: MACHINE_ROUTES, idPrefix: "machine-", authorization: "iam" },
    ] as const;
    for (const set of routeSets) {
      const methods = Object.fromEntries(
        Object.entries(set.routes).map(([name, route]) => [
          name,
          this.addMethod(`${set.idPrefix}${name}`, route, set.authorization),
        ]),
      ) as Record<RouteName, RouteMethod>;
      for (const name of READ_ROUTES) {
        this.integrateProxyRoute(`${set.idPrefix}${name}`, methods[name], props.jobStatusFunction);
      }
      for (const name of COMMAND_ROUTES) {
        this.integrateProxyRoute(`${set.idPrefix}${name}`, methods[name], props.jobCommandsFunction);
      }
    }

    for (const response of GATEWAY_RESPONSES) {
      this.define(
        new ApiGatewayGatewayResponse(this, `gateway-response-${response.type.toLowerCase()}`, {
          restApiId: this.api.id,
          responseType: response.type,
          statusCode: response.statusCode,
          responseTemplates: response.templates ?? ERROR_TEMPLATE,
          responseParameters: response.headers,
        }),
      );
    }

    const deployment = new ApiGatewayDeployment(this, "deployment", {
      restApiId: this.api.id,
      // A deployment is a snapshot of the API: take a new one whenever any
      // part of the definition changes (hashing the whole resource objects
      // catches changes that keep their ids), and switch the stage to it
      // before the old one goes.
      triggers: { redeployment: Fn.sha1(Fn.jsonencode(this.definition.map((r) => r.fqn))) },
      lifecycle: { createBeforeDestroy: true },
    });

    this.accessLogGroup = new CloudwatchLogGroup(this, "access-logs", {
      name: accessLogGroupName(props.name),
      retentionInDays: 30,
      kmsKeyId: props.kmsKeyArn,
    });
    skipCheck(this.accessLogGroup, "CKV_AWS_338", "access logs are kept 30 days by design; job records live in DynamoDB");

    this.stage = new ApiGatewayStage(this, "stage", {
      restApiId: this.api.id,
      deploymentId: deployment.id,
      stageName: STAGE_NAME,
      xrayTracingEnabled: true,
      accessLogSettings: { destinationArn: this.accessLogGroup.arn, format: ACCESS_LOG_FORMAT },
    });
    skipCheck(this.stage, "CKV_AWS_120", "job status must be fresh and per-user: responses are not cacheable");
    // The stage's web ACL is the per-client rate limits (api-rate-limits.ts), without the Log4j rule group.
    skipCheck(this.stage, "CKV2_AWS_77", "no Java behind this API (Rust functions): the Log4j managed rules protect nothing here");
    skipCheck(this.stage, "CKV2_AWS_51", "public clients authenticate with Cognito tokens, not TLS client certificates");
    skipCheck(this.stage, "CKV2_AWS_4", "execution logs go to a group API Gateway makes itself, unencrypted and kept forever; JSON access logs record every request");

    // Detailed per-method metrics and a throttle in front of the functions
    // (job-commands' reserved concurrency is sized for it: app-stack.ts).
    const settings = new ApiGatewayMethodSettings(this, "method-settings", {
      restApiId: this.api.id,
      stageName: this.stage.stageName,
      methodPath: "*/*",
      settings: {
        metricsEnabled: true,
        throttlingBurstLimit: STAGE_THROTTLE.burstLimit,
        throttlingRateLimit: STAGE_THROTTLE.rateLimit,
      },
    });
    skipCheck(settings, "CKV_AWS_225", "job status must be fresh and per-user: responses are not cacheable");

    this.machineClientRole = new MachineClientRole(this, "machine-client-role", {
      apiName: props.name,
      accountId: props.accountId,
      // <execution arn>/<stage>/<METHOD>/<path>: every machine route of this stage, nothing else.
      machineRoutesArn: `${this.api.executionArn}/${STAGE_NAME}/*/${MACHINE_PATH_PREFIX}/*`,
    });
  }

  private define<T extends TerraformResource>(resource: T): T {
    this.definition.push(resource);
    return resource;
  }

  /** The API resource for `path`, creating it and its parents on first use. */
  private resourceFor(path: string): ApiGatewayResource {
    let parentId = this.api.rootResourceId;
    let resource: ApiGatewayResource | undefined;
    const parts = path.split("/");
    for (let depth = 1; depth <= parts.length; depth++) {
      const prefix = parts.slice(0, depth).join("/");
      resource = this.pathResources.get(prefix);
      if (!resource) {
        resource = this.define(
          new ApiGatewayResource(this, `resource-${prefix.split(/[^A-Za-z0-9]+/).filter(Boolean).join("-")}`, {
            restApiId: this.api.id,
            parentId,
            pathPart: parts[depth - 1],
          }),
        );
        this.pathResources.set(prefix, resource);
      }
      parentId = resource.id;
    }
    return resource!;
  }

  private addMethod(name: string, route: Route, authorization: Authorization): RouteMethod {
    const method = this.define(
      new ApiGatewayMethod(this, `${name}-method`, {
        restApiId: this.api.id,
        resourceId: this.resourceFor(route.path).id,
        httpMethod: route.httpMethod,
        ...(authorization === "cognito"
          ? { authorization: "CUSTOM", authorizerId: this.authorizer.id }
          : { authorization: "AWS_IAM" }),
        ...(carriesJobRequest(route)
          ? {
              ...this.bodyValidation(),
              // Declared optional (false): a submit without them is valid
              // (https://docs.aws.amazon.com/apigateway/latest/api/API_Method.html#apigw-Type-Method-requestParameters).
              // The proxy integration passes every header to job-commands.
              requestParameters: {
                [`method.request.header.${CALLBACK_URL_HEADER}`]: false,
                [`method.request.header.${IDEMPOTENCY_KEY_HEADER}`]: false,
              },
            }
          : {}),
      }),
    );
    if (!carriesJobRequest(route)) {
      skipCheck(method, "CKV2_AWS_53", "no body; the function answers a malformed path id with 400 itself");
    }
    return { route, method };
  }

  /**
   * A JSON-schema model and a body validator: non-object JSON bodies get 400
   * before job-commands is invoked. One of each for the API, shared by both
   * submits.
   */
  private bodyValidation() {
    if (this.body) return this.body;
    const model = this.define(
      new ApiGatewayModel(this, "job-request-model", {
        restApiId: this.api.id,
        name: "JobRequest",
        contentType: "application/json",
        schema: JSON.stringify(JOB_REQUEST_SCHEMA),
      }),
    );
    const validator = this.define(
      new ApiGatewayRequestValidator(this, "body-validator", {
        restApiId: this.api.id,
        name: "body",
        validateRequestBody: true,
        validateRequestParameters: false,
      }),
    );
    this.body = { requestModels: { "application/json": model.name }, requestValidatorId: validator.id };
    return this.body;
  }

  /**
   * What a method's integration and responses address it by. Plain values
   * (the resource's id, the literal HTTP method) rather than the method's own
   * attributes, so that each is one simple reference the local target can
   * evaluate; `dependsOn` keeps the creation order.
   */
  private methodAddress({ route, method }: RouteMethod) {
    return {
      restApiId: this.api.id,
      resourceId: this.resourceFor(route.path).id,
      httpMethod: route.httpMethod,
      dependsOn: [method],
    };
  }

  /** A Lambda proxy integration; API Gateway may invoke the function for this route only. */
  private integrateProxyRoute(name: string, target: RouteMethod, fn: LambdaFunction): void {
    this.define(
      new ApiGatewayIntegration(this, `${name}-integration`, {
        ...this.methodAddress(target),
        type: "AWS_PROXY",
        integrationHttpMethod: "POST",
        uri: fn.invokeArn,
      }),
    );
    new LambdaPermission(this, `${name}-permission`, {
      functionName: fn.functionName,
      action: "lambda:InvokeFunction",
      principal: "apigateway.amazonaws.com",
      // <execution arn>/<stage>/<METHOD>/<path>
      sourceArn: `${this.api.executionArn}/*/${routePattern(target.route)}`,
    });
  }
}
