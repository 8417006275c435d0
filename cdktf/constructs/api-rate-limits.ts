import { Construct } from "constructs";
import { CloudwatchLogGroup } from "@cdktn/provider-aws/lib/cloudwatch-log-group";
import { Wafv2WebAcl } from "@cdktn/provider-aws/lib/wafv2-web-acl";
import { Wafv2WebAclAssociation } from "@cdktn/provider-aws/lib/wafv2-web-acl-association";
import { Wafv2WebAclLoggingConfiguration } from "@cdktn/provider-aws/lib/wafv2-web-acl-logging-configuration";
import { skipCheck } from "./checkov";

/**
 * Per-client limits, each over a sliding window of RATE_WINDOW_SECONDS. The
 * stage throttle (job-api.ts: 100 requests/s, burst 200) is shared by every
 * caller; with these no single token can take more than a tenth of it, and
 * no single address more than a fifth, so one caller cannot starve the
 * others. The address limit also holds for requests whose tokens differ
 * (junk tokens, each of which would invoke the authorizer, whose reserved
 * concurrency is 20): WAF counts them before API Gateway sees them.
 */
export const RATE_LIMITS = {
  /** Requests per window with the same `Authorization` header. */
  perToken: 600,
  /** Requests per window from the same client IP address. */
  perAddress: 1200,
} as const;

/**
 * 60 s, the shortest evaluation window WAF offers (60, 120, 300 or 600 s;
 * the lowest limit is 10): a blocked client is let in again soonest.
 * https://docs.aws.amazon.com/waf/latest/developerguide/waf-rule-statement-type-rate-based-high-level-settings.html
 */
export const RATE_WINDOW_SECONDS = 60;

const TOO_MANY_REQUESTS_BODY = "too-many-requests";

/**
 * Why the Log4j managed rule group (AWSManagedRulesKnownBadInputsRuleSet) is
 * not added: it protects Java back ends, and it inspects job bodies.
 */
export const LOG4J_REASON =
  "no Java behind this API (Rust functions, SQS); the managed rule group would refuse job bodies that merely contain such text";

/** The JSON body WAF answers a blocked request with (status 429, Retry-After). */
export const TOO_MANY_REQUESTS = {
  message: "Too Many Requests",
  hint:
    `This client sent more requests than the API allows one client: ${RATE_LIMITS.perToken} a minute per token, ` +
    `${RATE_LIMITS.perAddress.toLocaleString("en-US")} a minute per IP address. Wait a minute, then send fewer.`,
} as const;

/** WAF delivers logs only to log groups whose names start with `aws-waf-logs-`. */
export function wafLogGroupName(apiName: string): string {
  return `aws-waf-logs-${apiName}`;
}

export interface ApiRateLimitsProps {
  /** The web ACL's name; also names its log group. */
  readonly name: string;
  /** The API stage the limits apply to (`aws_api_gateway_stage.arn`). */
  readonly stageArn: string;
  /** Encrypts the log group of blocked requests. */
  readonly kmsKeyArn: string;
}

/**
 * Per-client rate limits in front of the API: an AWS WAF web ACL with two
 * rate-based rules, one keyed by the `Authorization` header, one by client
 * IP address. Chosen over API Gateway usage plans, which AWS describes as
 * best-effort targets not to be relied on "to control costs or block access"
 * (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-api-usage-plans.html),
 * and which API Gateway applies only after the authorizer ran, so junk
 * tokens would still reach the authorizer. Blocked requests are logged,
 * the Authorization header redacted.
 */
export class ApiRateLimits extends Construct {
  readonly webAcl: Wafv2WebAcl;
  readonly logGroup: CloudwatchLogGroup;

  constructor(scope: Construct, id: string, props: ApiRateLimitsProps) {
    super(scope, id);

    const block = {
      block: {
        customResponse: {
          responseCode: 429,
          customResponseBodyKey: TOO_MANY_REQUESTS_BODY,
          responseHeader: [{ name: "Retry-After", value: String(RATE_WINDOW_SECONDS) }],
        },
      },
    };
    const visibility = (metricName: string) => ({
      cloudwatchMetricsEnabled: true,
      metricName,
      sampledRequestsEnabled: true,
    });
    // `statement` is schemaless in the provider: Terraform's own (snake_case) block names.
    const rateBased = (limit: number, key: Record<string, unknown>) => ({
      rate_based_statement: [{ limit, evaluation_window_sec: RATE_WINDOW_SECONDS, ...key }],
    });

    this.webAcl = new Wafv2WebAcl(this, "web-acl", {
      name: props.name,
      description: "Per-client rate limits of the job API",
      scope: "REGIONAL",
      defaultAction: { allow: {} },
      customResponseBody: [
        { key: TOO_MANY_REQUESTS_BODY, contentType: "APPLICATION_JSON", content: JSON.stringify(TOO_MANY_REQUESTS) },
      ],
      rule: [
        {
          name: "per-token",
          priority: 0,
          action: block,
          statement: rateBased(RATE_LIMITS.perToken, {
            aggregate_key_type: "CUSTOM_KEYS",
            custom_key: [
              { header: [{ name: "authorization", text_transformation: [{ priority: 0, type: "NONE" }] }] },
            ],
          }),
          visibilityConfig: visibility(`${props.name}-per-token`),
        },
        {
          name: "per-address",
          priority: 1,
          action: block,
          statement: rateBased(RATE_LIMITS.perAddress, { aggregate_key_type: "IP" }),
          visibilityConfig: visibility(`${props.name}-per-address`),
        },
      ],
      visibilityConfig: visibility(props.name),
    });
    skipCheck(this.webAcl, "CKV_AWS_192", LOG4J_REASON);

    new Wafv2WebAclAssociation(this, "stage", { resourceArn: props.stageArn, webAclArn: this.webAcl.arn });

    this.logGroup = new CloudwatchLogGroup(this, "blocked-requests", {
      name: wafLogGroupName(props.name),
      retentionInDays: 30,
      kmsKeyId: props.kmsKeyArn,
    });
    skipCheck(this.logGroup, "CKV_AWS_338", "blocked-request logs are kept 30 days, like the API's access logs");
    new Wafv2WebAclLoggingConfiguration(this, "logging", {
      resourceArn: this.webAcl.arn,
      logDestinationConfigs: [this.logGroup.arn],
      // The token is a credential: never in a log.
      redactedFields: [{ singleHeader: { name: "authorization" } }],
      // Only what the limits blocked: allowed requests are in the API's access log.
      loggingFilter: {
        defaultBehavior: "DROP",
        filter: [{ behavior: "KEEP", requirement: "MEETS_ANY", condition: [{ actionCondition: { action: "BLOCK" } }] }],
      },
    });
  }
}
