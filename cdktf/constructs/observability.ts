import { Fn, Op, TerraformVariable, Token } from "cdktn";
import { Construct } from "constructs";
import { CloudwatchDashboard } from "@cdktn/provider-aws/lib/cloudwatch-dashboard";
import { CloudwatchMetricAlarm } from "@cdktn/provider-aws/lib/cloudwatch-metric-alarm";
import { SnsTopic } from "@cdktn/provider-aws/lib/sns-topic";
import { SnsTopicPolicy } from "@cdktn/provider-aws/lib/sns-topic-policy";
import { SnsTopicSubscription } from "@cdktn/provider-aws/lib/sns-topic-subscription";

/**
 * The business metrics the job processor (and, for cancels, job-commands)
 * emits in Embedded Metric Format (dimension-less; names from
 * functions/jobs-aws/src/metrics.rs).
 */
export const BUSINESS_METRICS = {
  recorded: "JobsRecorded",
  completed: "JobsCompleted",
  failed: "JobsFailed",
  /** One per job its owner cancelled (job-commands). */
  cancelled: "JobsCancelled",
  duration: "JobDuration",
  /** One per job whose terminal-state event could not be put on the job events bus (after retries). */
  eventsNotPublished: "JobEventsNotPublished",
} as const;

/** The batch simulator's EMF metrics, in the same namespace and also dimension-less. */
export const SIMULATOR_METRICS = {
  /** Milliseconds of a successful simulation (results written). */
  duration: "SimulationDuration",
  /** One per failure a job asked for (`simulateFailure`). */
  failures: "SimulatedFailures",
} as const;

/** webhook-sender's EMF metrics, in the same namespace and also dimension-less. */
export const WEBHOOK_METRICS = {
  /** One per webhook the receiver accepted (2xx). */
  delivered: "WebhooksDelivered",
  /** One per attempt that failed (error, timeout, non-2xx); the delivery is retried until its last attempt. */
  attemptsFailed: "WebhookAttemptsFailed",
  /** One per webhook never sent because its callback URL is not allowed (recorded on the job). */
  refused: "WebhooksRefused",
} as const;

/** Age of the oldest job-queue message that pages someone: jobs should start within seconds. */
export const OLDEST_MESSAGE_ALARM_SECONDS = 300;

export interface ObservabilityProps {
  readonly namePrefix: string;
  readonly region: string;
  readonly accountId: string;
  readonly kmsKeyArn: string;
  readonly metricsNamespace: string;
  /** Function names (the deployed names), keyed by the contract's names. */
  readonly functionNames: Record<string, string>;
  readonly queueName: string;
  readonly deadLetterQueueName: string;
  /** More dead-letter queues to alarm on, by what they hold (e.g. `object-counter`): an alarm `<id>-dlq-messages` each. */
  readonly otherDeadLetterQueues?: Record<string, string>;
  /** The webhook delivery queue and its DLQ (job-webhooks.ts): a DLQ alarm `webhooks-dlq-messages` and graphs. */
  readonly webhooks?: { readonly queueName: string; readonly deadLetterQueueName: string };
  /** The jobs table. */
  readonly tableName: string;
  /** More DynamoDB tables, by what they hold (e.g. `counters`): throttle alarms `<id>-table-read/write-throttles` and a graph each. */
  readonly otherTables?: Record<string, string>;
  readonly apiName: string;
  readonly apiStageName: string;
}

type Metric = (string | Record<string, unknown>)[];

/**
 * Alarms into one encrypted SNS topic and one dashboard for the whole stack:
 * API, queues, functions, table and the EMF business metrics.
 */
export class Observability extends Construct {
  readonly alarmTopic: SnsTopic;
  readonly dashboard: CloudwatchDashboard;
  readonly alarms: CloudwatchMetricAlarm[] = [];

  constructor(scope: Construct, id: string, props: ObservabilityProps) {
    super(scope, id);
    const prefix = props.namePrefix;

    this.alarmTopic = new SnsTopic(this, "alarms", {
      name: `${prefix}-alarms`,
      kmsMasterKeyId: props.kmsKeyArn,
    });
    new SnsTopicPolicy(this, "alarms-policy", {
      arn: this.alarmTopic.arn,
      policy: JSON.stringify({
        Version: "2012-10-17",
        Statement: [
          {
            Sid: "CloudWatchAlarms",
            Effect: "Allow",
            Principal: { Service: "cloudwatch.amazonaws.com" },
            Action: "sns:Publish",
            Resource: this.alarmTopic.arn,
            Condition: { StringEquals: { "aws:SourceAccount": props.accountId } },
          },
        ],
      }),
    });

    // Optional: `-var alarm_email=ops@example.com` subscribes an address (it must confirm).
    const email = new TerraformVariable(this, "alarm_email", {
      type: "string",
      default: "",
      description: "Email address that receives the alarms (empty: no subscription)",
    });
    email.overrideLogicalId("alarm_email");
    new SnsTopicSubscription(this, "alarm-email", {
      count: Token.asNumber(Fn.conditional(Op.eq(email.stringValue, ""), 0, 1)),
      topicArn: this.alarmTopic.arn,
      protocol: "email",
      endpoint: email.stringValue,
    });

    const alarm = (name: string, description: string, metric: AlarmMetric) => {
      const resource = new CloudwatchMetricAlarm(this, `alarm-${name}`, {
        alarmName: `${prefix}-${name}`,
        alarmDescription: description,
        namespace: metric.namespace,
        metricName: metric.metricName,
        dimensions: metric.dimensions,
        statistic: metric.statistic ?? "Sum",
        period: 60,
        evaluationPeriods: metric.evaluationPeriods ?? 1,
        threshold: metric.threshold ?? 0,
        comparisonOperator: metric.comparisonOperator ?? "GreaterThanThreshold",
        treatMissingData: "notBreaching",
        alarmActions: [this.alarmTopic.arn],
        okActions: [this.alarmTopic.arn],
      });
      this.alarms.push(resource);
    };

    for (const [fn, functionName] of Object.entries(props.functionNames)) {
      const dimensions = { FunctionName: functionName };
      alarm(`${fn}-errors`, `${fn} invocations failed`, { namespace: "AWS/Lambda", metricName: "Errors", dimensions });
      alarm(`${fn}-throttles`, `${fn} invocations were throttled`, {
        namespace: "AWS/Lambda",
        metricName: "Throttles",
        dimensions,
      });
    }
    alarm("dlq-messages", "failed jobs are waiting in the dead-letter queue", {
      namespace: "AWS/SQS",
      metricName: "ApproximateNumberOfMessagesVisible",
      dimensions: { QueueName: props.deadLetterQueueName },
      statistic: "Maximum",
    });
    for (const [what, queueName] of Object.entries(props.otherDeadLetterQueues ?? {})) {
      alarm(`${what}-dlq-messages`, `failed ${what} events are waiting in their dead-letter queue`, {
        namespace: "AWS/SQS",
        metricName: "ApproximateNumberOfMessagesVisible",
        dimensions: { QueueName: queueName },
        statistic: "Maximum",
      });
    }
    if (props.webhooks) {
      alarm("webhooks-dlq-messages", "completion webhooks that were never delivered are waiting in their dead-letter queue", {
        namespace: "AWS/SQS",
        metricName: "ApproximateNumberOfMessagesVisible",
        dimensions: { QueueName: props.webhooks.deadLetterQueueName },
        statistic: "Maximum",
      });
    }
    alarm("queue-oldest-message", `a job has waited over ${OLDEST_MESSAGE_ALARM_SECONDS} s in the queue`, {
      namespace: "AWS/SQS",
      metricName: "ApproximateAgeOfOldestMessage",
      dimensions: { QueueName: props.queueName },
      statistic: "Maximum",
      threshold: OLDEST_MESSAGE_ALARM_SECONDS,
      evaluationPeriods: 2,
    });
    alarm("api-5xx", "the API answered with server errors", {
      namespace: "AWS/ApiGateway",
      metricName: "5XXError",
      dimensions: { ApiName: props.apiName, Stage: props.apiStageName },
    });
    // The jobs table keeps its alarm names (`table-...`); the others are `<id>-table-...`.
    const tables: [string, string, string][] = [
      ["table", "jobs", props.tableName],
      ...Object.entries(props.otherTables ?? {}).map(([what, name]): [string, string, string] => [`${what}-table`, what, name]),
    ];
    for (const [alarmId, what, tableName] of tables) {
      for (const kind of ["Read", "Write"]) {
        alarm(`${alarmId}-${kind.toLowerCase()}-throttles`, `DynamoDB throttled ${kind.toLowerCase()}s on the ${what} table`, {
          namespace: "AWS/DynamoDB",
          metricName: `${kind}ThrottleEvents`,
          dimensions: { TableName: tableName },
        });
      }
    }

    // A job ended but its event is not on the bus: subscribers will never
    // learn of it. Any one in a minute alarms (the processor's EMF metric,
    // dimension-less like the other business metrics).
    alarm("job-events-not-published", "job-processor could not publish a finished job's event to the job events bus", {
      namespace: props.metricsNamespace,
      metricName: BUSINESS_METRICS.eventsNotPublished,
      threshold: 1,
      comparisonOperator: "GreaterThanOrEqualToThreshold",
    });

    this.dashboard = new CloudwatchDashboard(this, "dashboard", {
      dashboardName: prefix,
      dashboardBody: JSON.stringify({ widgets: dashboardWidgets(props) }),
    });
  }

  /** The dashboard in the CloudWatch console. */
  dashboardUrl(region: string): string {
    return `https://${region}.console.aws.amazon.com/cloudwatch/home?region=${region}#dashboards:name=${this.dashboard.dashboardName}`;
  }
}

interface AlarmMetric {
  readonly namespace: string;
  readonly metricName: string;
  /** None: a dimension-less metric (the EMF business metrics). */
  readonly dimensions?: Record<string, string>;
  readonly statistic?: string;
  readonly threshold?: number;
  readonly comparisonOperator?: string;
  readonly evaluationPeriods?: number;
}

function dashboardWidgets(props: ObservabilityProps): object[] {
  const widgets: object[] = [];
  const graph = (title: string, metrics: Metric[], extra: Record<string, unknown> = {}) =>
    widgets.push({
      type: "metric",
      width: 8,
      height: 6,
      properties: { title, region: props.region, view: "timeSeries", stat: "Sum", period: 60, metrics, ...extra },
    });
  const api = ["ApiName", props.apiName, "Stage", props.apiStageName];
  graph("API requests and errors", [
    ["AWS/ApiGateway", "Count", ...api],
    ["AWS/ApiGateway", "4XXError", ...api],
    ["AWS/ApiGateway", "5XXError", ...api],
  ]);
  graph("API latency (ms)", [
    ["AWS/ApiGateway", "Latency", ...api, { stat: "p50" }],
    ["AWS/ApiGateway", "Latency", ...api, { stat: "p99" }],
  ]);
  const queue = ["QueueName", props.queueName];
  graph("Job queue", [
    ["AWS/SQS", "NumberOfMessagesSent", ...queue],
    ["AWS/SQS", "NumberOfMessagesReceived", ...queue],
    ["AWS/SQS", "NumberOfMessagesDeleted", ...queue],
    ["AWS/SQS", "ApproximateNumberOfMessagesVisible", ...queue, { stat: "Maximum" }],
  ]);
  graph("Oldest message (s) and DLQ depth", [
    ["AWS/SQS", "ApproximateAgeOfOldestMessage", ...queue, { stat: "Maximum" }],
    ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", props.deadLetterQueueName, { stat: "Maximum" }],
  ]);
  for (const [fn, functionName] of Object.entries(props.functionNames)) {
    const f = ["FunctionName", functionName];
    graph(`${fn}: invocations, errors, throttles, concurrency`, [
      ["AWS/Lambda", "Invocations", ...f],
      ["AWS/Lambda", "Errors", ...f],
      ["AWS/Lambda", "Throttles", ...f],
      ["AWS/Lambda", "ConcurrentExecutions", ...f, { stat: "Maximum" }],
    ]);
    graph(`${fn}: duration (ms)`, [
      ["AWS/Lambda", "Duration", ...f, { stat: "p50" }],
      ["AWS/Lambda", "Duration", ...f, { stat: "p99" }],
    ]);
  }
  const tables = { jobs: props.tableName, ...props.otherTables };
  for (const [what, tableName] of Object.entries(tables)) {
    const table = ["TableName", tableName];
    graph(`${what[0].toUpperCase()}${what.slice(1)} table capacity and throttles`, [
      ["AWS/DynamoDB", "ConsumedReadCapacityUnits", ...table],
      ["AWS/DynamoDB", "ConsumedWriteCapacityUnits", ...table],
      ["AWS/DynamoDB", "ReadThrottleEvents", ...table],
      ["AWS/DynamoDB", "WriteThrottleEvents", ...table],
    ]);
  }
  const ns = props.metricsNamespace;
  graph("Jobs (EMF business metrics)", [
    [ns, BUSINESS_METRICS.recorded],
    [ns, BUSINESS_METRICS.completed],
    [ns, BUSINESS_METRICS.failed],
    [ns, BUSINESS_METRICS.cancelled],
  ]);
  graph("Job duration (ms, EMF)", [
    [ns, BUSINESS_METRICS.duration, { stat: "p50" }],
    [ns, BUSINESS_METRICS.duration, { stat: "p99" }],
  ]);
  graph("Job events not published (EMF)", [[ns, BUSINESS_METRICS.eventsNotPublished]]);
  graph("Batch simulator: simulated failures (EMF)", [[ns, SIMULATOR_METRICS.failures]]);
  if (props.webhooks) {
    graph("Webhooks (EMF)", [
      [ns, WEBHOOK_METRICS.delivered],
      [ns, WEBHOOK_METRICS.attemptsFailed],
      [ns, WEBHOOK_METRICS.refused],
    ]);
    const webhookQueue = ["QueueName", props.webhooks.queueName];
    // A delivery waiting for its next attempt is in flight (its visibility is the back-off): NotVisible.
    graph("Webhook queue: waiting, in flight or back-off, oldest (s) and DLQ depth", [
      ["AWS/SQS", "ApproximateNumberOfMessagesVisible", ...webhookQueue, { stat: "Maximum" }],
      ["AWS/SQS", "ApproximateNumberOfMessagesNotVisible", ...webhookQueue, { stat: "Maximum" }],
      ["AWS/SQS", "ApproximateAgeOfOldestMessage", ...webhookQueue, { stat: "Maximum" }],
      ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", props.webhooks.deadLetterQueueName, { stat: "Maximum" }],
    ]);
  }
  graph("Batch simulator: simulation duration (ms, EMF)", [
    [ns, SIMULATOR_METRICS.duration, { stat: "p50" }],
    [ns, SIMULATOR_METRICS.duration, { stat: "p99" }],
  ]);
  return widgets;
}

