// Logs, traces, alarms and the dashboard of the app stack.
import * as fs from "node:fs";
import * as path from "node:path";
import { REPO_ROOT } from "../config";
import { BUSINESS_METRICS, SIMULATOR_METRICS, WEBHOOK_METRICS } from "../constructs/observability";
import {
  Block,
  CONTRACT_FUNCTIONS,
  lambdaFor,
  mappingFor,
  ref,
  referencedName,
  resourcesOf,
  SynthesizedStack,
  synthStacks,
  theResource,
  writeFixtureZips,
} from "./support";

let app: SynthesizedStack;
let topicArn: string;
let keyArn: string;

beforeAll(() => {
  app = synthStacks({ JOBS_LAMBDA_ZIP_DIR: writeFixtureZips() }).app;
  topicArn = ref("aws_sns_topic", alarmTopic()[0], "arn");
  keyArn = ref("aws_kms_key", theResource(app.json, "aws_kms_key")[0], "arn");
});

/** The alarm topic (the other topic carries the results bucket's object events). */
function alarmTopic(): [string, Block] {
  return theResource(app.json, "aws_sns_topic", (t) => /-alarms$/.test(t.name));
}

/** The jobs queue's DLQ (the object counter has its own). */
function jobsDeadLetterQueue(queueName: string): [string, Block] {
  const queue = app.json.resource!.aws_sqs_queue[queueName];
  return theResource(app.json, "aws_sqs_queue", (q) => q.name === `${queue.name}-dlq`);
}

/** The alarms watching `metric` in `namespace`. */
function alarmsOn(namespace: string, metric: string): Block[] {
  return resourcesOf(app.json, "aws_cloudwatch_metric_alarm")
    .map(([, alarm]) => alarm)
    .filter((alarm) => alarm.namespace === namespace && alarm.metric_name === metric);
}

describe("function logs and traces", () => {
  test.each(CONTRACT_FUNCTIONS)("%s logs JSON to its own encrypted group kept 30 days, with X-Ray active", (fn) => {
    const [, lambda] = lambdaFor(app.json, fn);
    const groupName = referencedName(lambda.logging_config.log_group, "aws_cloudwatch_log_group");
    const group = app.json.resource!.aws_cloudwatch_log_group[groupName];
    expect(group).toMatchObject({ name: `/aws/lambda/${lambda.function_name}`, retention_in_days: 30, kms_key_id: keyArn });
    expect(lambda.logging_config.log_format).toBe("JSON");
    expect(lambda.tracing_config).toEqual({ mode: "Active" });
    expect(lambda.kms_key_arn).toBe(keyArn);
  });

  test.each(["job-processor", "batch-simulator", "webhook-sender"])("%s emits its EMF metrics to JobIngestion/<stage>", (fn) => {
    expect(lambdaFor(app.json, fn)[1].environment.variables.METRICS_NAMESPACE).toBe("JobIngestion/dev");
  });

  test("JOBS_METRICS_NAMESPACE moves the functions' EMF metrics and the dashboard's business graphs together", () => {
    const other = synthStacks({ JOBS_METRICS_NAMESPACE: "Acme/Jobs", JOBS_LAMBDA_ZIP_DIR: writeFixtureZips() }).app.json;
    for (const fn of ["job-processor", "batch-simulator", "webhook-sender"]) {
      expect(lambdaFor(other, fn)[1].environment.variables.METRICS_NAMESPACE).toBe("Acme/Jobs");
    }
    const [, dashboard] = theResource(other, "aws_cloudwatch_dashboard");
    const rows: unknown[][] = JSON.parse(dashboard.dashboard_body).widgets.flatMap((w: Block) => w.properties.metrics);
    const emf = [...Object.values(BUSINESS_METRICS), ...Object.values(SIMULATOR_METRICS), ...Object.values(WEBHOOK_METRICS)] as string[];
    const namespaces = new Set(rows.filter((m) => emf.includes(m[1] as string)).map((m) => m[0]));
    expect(namespaces).toEqual(new Set(["Acme/Jobs"]));
  });
});

describe("alarms", () => {
  test("go to one SNS topic encrypted with the stack's key", () => {
    const [, topic] = alarmTopic();
    expect(topic.kms_master_key_id).toBe(keyArn);
    const alarms = resourcesOf(app.json, "aws_cloudwatch_metric_alarm");
    expect(alarms.length).toBeGreaterThan(0);
    for (const [, alarm] of alarms) expect(alarm.alarm_actions).toEqual([topicArn]);
  });

  test("an email subscription exists only when the alarm_email variable is set", () => {
    const [, subscription] = theResource(app.json, "aws_sns_topic_subscription", (sub) => sub.protocol === "email");
    expect(subscription).toMatchObject({ protocol: "email", topic_arn: topicArn, endpoint: "${var.alarm_email}" });
    expect(subscription.count).toBe('${(var.alarm_email == "") ? 0 : 1}');
    expect((app.json as Block).variable.alarm_email.default).toBe("");
  });

  test.each(CONTRACT_FUNCTIONS)("%s: errors and throttles", (fn) => {
    const [name] = lambdaFor(app.json, fn);
    const dimensions = { FunctionName: ref("aws_lambda_function", name, "function_name") };
    for (const metric of ["Errors", "Throttles"]) {
      const alarms = alarmsOn("AWS/Lambda", metric).filter((a) => a.dimensions.FunctionName === dimensions.FunctionName);
      expect(alarms).toHaveLength(1);
      expect(alarms[0]).toMatchObject({ threshold: 0, comparison_operator: "GreaterThanThreshold" });
    }
  });

  test("any message visible in any DLQ (jobs, object counter, webhooks); the oldest job-queue message over 5 minutes", () => {
    const [, mapping] = mappingFor(app.json, "job-processor");
    const queueName = referencedName(mapping.event_source_arn, "aws_sqs_queue");
    const [dlqName] = jobsDeadLetterQueue(queueName);
    const [counterDlqName] = theResource(app.json, "aws_sqs_queue", (q) => q.name === "jobs-dev-object-counter-dlq");
    const [webhookDlqName] = theResource(app.json, "aws_sqs_queue", (q) => q.name === "jobs-dev-webhooks-dlq");
    expect(alarmsOn("AWS/SQS", "ApproximateNumberOfMessagesVisible")).toEqual([
      expect.objectContaining({ dimensions: { QueueName: ref("aws_sqs_queue", dlqName, "name") }, threshold: 0 }),
      expect.objectContaining({
        alarm_name: "jobs-dev-object-counter-dlq-messages",
        dimensions: { QueueName: ref("aws_sqs_queue", counterDlqName, "name") },
        threshold: 0,
      }),
      expect.objectContaining({
        alarm_name: "jobs-dev-webhooks-dlq-messages",
        dimensions: { QueueName: ref("aws_sqs_queue", webhookDlqName, "name") },
        statistic: "Maximum",
        threshold: 0,
      }),
    ]);
    expect(alarmsOn("AWS/SQS", "ApproximateAgeOfOldestMessage")).toEqual([
      expect.objectContaining({ dimensions: { QueueName: ref("aws_sqs_queue", queueName, "name") }, threshold: 300 }),
    ]);
  });

  test("API 5XX on this API's stage, and DynamoDB read and write throttles on the three tables (jobs, counters, idempotency keys)", () => {
    const [apiName] = theResource(app.json, "aws_api_gateway_rest_api");
    expect(alarmsOn("AWS/ApiGateway", "5XXError")).toEqual([
      expect.objectContaining({ dimensions: { ApiName: ref("aws_api_gateway_rest_api", apiName, "name"), Stage: "api" } }),
    ]);
    const table = (name: string) => ref("aws_dynamodb_table", theResource(app.json, "aws_dynamodb_table", (t) => t.name === name)[0], "name");
    expect(resourcesOf(app.json, "aws_dynamodb_table")).toHaveLength(3);
    for (const [kind, metric] of [["read", "ReadThrottleEvents"], ["write", "WriteThrottleEvents"]]) {
      const alarms = alarmsOn("AWS/DynamoDB", metric);
      expect(alarms).toHaveLength(3);
      expect(alarms).toEqual(expect.arrayContaining([
        expect.objectContaining({
          alarm_name: `jobs-dev-table-${kind}-throttles`,
          dimensions: { TableName: table("jobs-dev-jobs") },
          threshold: 0,
          comparison_operator: "GreaterThanThreshold",
        }),
        expect.objectContaining({
          alarm_name: `jobs-dev-counters-table-${kind}-throttles`,
          alarm_description: `DynamoDB throttled ${kind}s on the counters table`,
          dimensions: { TableName: table("jobs-dev-counters") },
          threshold: 0,
          comparison_operator: "GreaterThanThreshold",
        }),
        // A throttled claim fails the submit (job-commands answers it as unavailable).
        expect.objectContaining({
          alarm_name: `jobs-dev-idempotency-table-${kind}-throttles`,
          alarm_description: `DynamoDB throttled ${kind}s on the idempotency table`,
          dimensions: { TableName: table("jobs-dev-idempotency-keys") },
          threshold: 0,
          comparison_operator: "GreaterThanThreshold",
        }),
      ]));
    }
  });
});

describe("dashboard", () => {
  let metrics: unknown[][];
  beforeAll(() => {
    const [, dashboard] = theResource(app.json, "aws_cloudwatch_dashboard");
    metrics = JSON.parse(dashboard.dashboard_body).widgets.flatMap((w: Block) => w.properties.metrics);
  });

  /** Whether a graph shows `metric` of `namespace` (with `dimensionValue`, and `stat` when given). */
  const shows = (namespace: string, metric: string, dimensionValue?: string, stat?: string) =>
    metrics.some(
      (m) =>
        m[0] === namespace &&
        m[1] === metric &&
        (dimensionValue === undefined || m.includes(dimensionValue)) &&
        (stat === undefined || m.some((x) => typeof x === "object" && (x as Block).stat === stat)),
    );

  test("the API: requests, 4XX, 5XX and latency", () => {
    for (const metric of ["Count", "4XXError", "5XXError"]) expect(shows("AWS/ApiGateway", metric)).toBe(true);
    expect(shows("AWS/ApiGateway", "Latency", undefined, "p99")).toBe(true);
  });

  test("the queue (sent, received, deleted, visible, oldest age) and the DLQ depth", () => {
    const [, mapping] = mappingFor(app.json, "job-processor");
    const queueName = referencedName(mapping.event_source_arn, "aws_sqs_queue");
    const [dlqName] = jobsDeadLetterQueue(queueName);
    const queue = ref("aws_sqs_queue", queueName, "name");
    for (const metric of [
      "NumberOfMessagesSent",
      "NumberOfMessagesReceived",
      "NumberOfMessagesDeleted",
      "ApproximateNumberOfMessagesVisible",
      "ApproximateAgeOfOldestMessage",
    ]) {
      expect(shows("AWS/SQS", metric, queue)).toBe(true);
    }
    expect(shows("AWS/SQS", "ApproximateNumberOfMessagesVisible", ref("aws_sqs_queue", dlqName, "name"))).toBe(true);
  });

  test.each(CONTRACT_FUNCTIONS)("%s: invocations, errors, throttles, duration p50/p99, concurrency", (fn) => {
    const name = ref("aws_lambda_function", lambdaFor(app.json, fn)[0], "function_name");
    for (const metric of ["Invocations", "Errors", "Throttles", "ConcurrentExecutions"]) {
      expect(shows("AWS/Lambda", metric, name)).toBe(true);
    }
    expect(shows("AWS/Lambda", "Duration", name, "p50")).toBe(true);
    expect(shows("AWS/Lambda", "Duration", name, "p99")).toBe(true);
  });

  test.each(["jobs-dev-jobs", "jobs-dev-counters", "jobs-dev-idempotency-keys"])("the %s table's consumed capacity and throttles", (tableName) => {
    const table = ref("aws_dynamodb_table", theResource(app.json, "aws_dynamodb_table", (t) => t.name === tableName)[0], "name");
    for (const metric of ["ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits", "ReadThrottleEvents", "WriteThrottleEvents"]) {
      expect(shows("AWS/DynamoDB", metric, table)).toBe(true);
    }
  });

  test("the EMF business metrics, dimension-less, in the functions' namespace", () => {
    expect(Object.values(BUSINESS_METRICS).sort()).toEqual([
      "JobDuration",
      "JobEventsNotPublished",
      "JobsCancelled",
      "JobsCompleted",
      "JobsFailed",
      "JobsRecorded",
    ]);
    for (const metric of Object.values(BUSINESS_METRICS)) {
      const rows = metrics.filter((m) => m[0] === "JobIngestion/dev" && m[1] === metric);
      expect(rows.length).toBeGreaterThan(0);
      // Dimension-less: nothing between the name and the options.
      for (const row of rows) expect(row.slice(2).every((x) => typeof x === "object")).toBe(true);
    }
  });

  test("the batch simulator's EMF metrics, dimension-less: simulated failures and simulation duration p50/p99", () => {
    expect(Object.values(SIMULATOR_METRICS).sort()).toEqual(["SimulatedFailures", "SimulationDuration"]);
    expect(shows("JobIngestion/dev", "SimulatedFailures")).toBe(true);
    expect(shows("JobIngestion/dev", "SimulationDuration", undefined, "p50")).toBe(true);
    expect(shows("JobIngestion/dev", "SimulationDuration", undefined, "p99")).toBe(true);
    for (const row of metrics.filter((m) => m[0] === "JobIngestion/dev")) {
      expect(row.slice(2).every((x) => typeof x === "object")).toBe(true);
    }
  });

  test("webhook-sender's EMF metrics, dimension-less: delivered, failed attempts, refused", () => {
    expect(Object.values(WEBHOOK_METRICS).sort()).toEqual(["WebhookAttemptsFailed", "WebhooksDelivered", "WebhooksRefused"]);
    for (const metric of Object.values(WEBHOOK_METRICS)) expect(shows("JobIngestion/dev", metric)).toBe(true);
  });

  test("the webhook queue (waiting, in flight or back-off, oldest age) and its DLQ depth", () => {
    const [, mapping] = mappingFor(app.json, "webhook-sender");
    const queue = ref("aws_sqs_queue", referencedName(mapping.event_source_arn, "aws_sqs_queue"), "name");
    const [dlqName] = theResource(app.json, "aws_sqs_queue", (q) => q.name === "jobs-dev-webhooks-dlq");
    for (const metric of ["ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible", "ApproximateAgeOfOldestMessage"]) {
      expect(shows("AWS/SQS", metric, queue)).toBe(true);
    }
    expect(shows("AWS/SQS", "ApproximateNumberOfMessagesVisible", ref("aws_sqs_queue", dlqName, "name"))).toBe(true);
  });

  test("every EMF metric the functions define (functions/jobs-aws/src/metrics.rs) is on the dashboard", () => {
    const source = fs.readFileSync(path.join(REPO_ROOT, "functions", "jobs-aws", "src", "metrics.rs"), "utf8");
    const names = source.slice(source.indexOf("pub mod name")).split("}")[0];
    const defined = [...names.matchAll(/pub const [A-Z_]+: &str = "([A-Za-z]+)";/g)].map((m) => m[1]);
    expect(defined.length).toBeGreaterThanOrEqual(6);
    const known = [...Object.values(BUSINESS_METRICS), ...Object.values(SIMULATOR_METRICS), ...Object.values(WEBHOOK_METRICS)] as string[];
    expect(defined.sort()).toEqual(known.sort());
    for (const metric of defined) expect(shows("JobIngestion/dev", metric)).toBe(true);
  });

  test("the dashboard URL is an output", () => {
    const [dashboardName] = theResource(app.json, "aws_cloudwatch_dashboard");
    expect(app.json.output!.dashboardUrl.value).toContain(
      `#dashboards:name=${ref("aws_cloudwatch_dashboard", dashboardName, "dashboard_name")}`,
    );
  });
});
