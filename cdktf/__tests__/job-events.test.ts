// The job events bus (issue 17): job-processor puts one event per job that
// ends on a custom EventBridge bus, and nothing else may put events anywhere.
import { CloudwatchEventBus } from "@cdktn/provider-aws/lib/cloudwatch-event-bus";
import {
  Block,
  lambdaFor,
  list,
  policyStatements,
  ref,
  referencedName,
  resourcesOf,
  statementsOfRole,
  Statement,
  SynthesizedStack,
  synthStacks,
  theResource,
  writeFixtureZips,
} from "./support";

let app: SynthesizedStack;
let busName: string;
let bus: Block;
let keyArn: string;

beforeAll(() => {
  app = synthStacks({ JOBS_LAMBDA_ZIP_DIR: writeFixtureZips() }).app;
  [busName, bus] = theResource(app.json, "aws_cloudwatch_event_bus");
  keyArn = ref("aws_kms_key", theResource(app.json, "aws_kms_key")[0], "arn");
});

const ACCOUNT = "${data.aws_caller_identity.current-account.account_id}";
const REGION = "${data.aws_region.current-region.region}";

test("one custom bus, <prefix>-jobs, encrypted with the stack's customer-managed key, no archive", () => {
  expect(resourcesOf(app.json, "aws_cloudwatch_event_bus")).toHaveLength(1);
  expect(app.text).toHaveResourceWithProperties(CloudwatchEventBus, { name: "jobs-dev-jobs", kms_key_identifier: keyArn });
  expect(resourcesOf(app.json, "aws_cloudwatch_event_archive")).toEqual([]);
});

/** The functions that publish jobs' ends: the processor (complete, failed) and the commands (cancelled). */
const PUBLISHERS = ["job-processor", "job-commands"];

test.each(PUBLISHERS)("%s's JOB_EVENTS_BUS_NAME is the bus's name", (fn) => {
  const env = lambdaFor(app.json, fn)[1].environment.variables;
  expect(env.JOB_EVENTS_BUS_NAME).toBe(ref("aws_cloudwatch_event_bus", busName, "name"));
});

test.each(PUBLISHERS)("%s may put events on exactly that bus, in one statement", (fn) => {
  const role = referencedName(lambdaFor(app.json, fn)[1].role, "aws_iam_role");
  const statements = statementsOfRole(app.json, role).filter((s) => s.Action.some((a) => a.startsWith("events:")));
  expect(statements).toEqual([
    { Effect: "Allow", Action: ["events:PutEvents"], Resource: [ref("aws_cloudwatch_event_bus", busName, "arn")] },
  ]);
});

test("no other statement of the stack, in any IAM or resource policy, grants an EventBridge action", () => {
  const publisherPolicies = PUBLISHERS.map((fn) => {
    const role = referencedName(lambdaFor(app.json, fn)[1].role, "aws_iam_role");
    return resourcesOf(app.json, "aws_iam_role_policy").find(([, p]) => p.role === ref("aws_iam_role", role, "id"))![0];
  });
  const others = policyStatements(app.json).filter(
    ({ type, name, statement }) =>
      list(statement.Action).some((a) => a.startsWith("events:")) &&
      !(type === "aws_iam_role_policy" && publisherPolicies.includes(name)),
  );
  expect(others).toEqual([]);
  // Nor does any bus policy open the bus to other principals.
  expect(resourcesOf(app.json, "aws_cloudwatch_event_bus_policy")).toEqual([]);
});

describe("the key policy lets EventBridge use the key for this bus, as AWS documents", () => {
  // https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-encryption-key-policy.html:
  // kms:DescribeKey, kms:GenerateDataKey and kms:Decrypt, with a source or encryption-context condition.
  const eventBridge = (): Statement[] =>
    JSON.parse(theResource(app.json, "aws_kms_key")[1].policy).Statement.filter(
      (s: Statement) => (s.Principal as Block)?.Service === "events.amazonaws.com",
    );
  const busArn = `arn:aws:events:${REGION}:${ACCOUNT}:event-bus/jobs-dev-jobs`;

  test("data keys only for this bus (the encryption context EventBridge sends is the bus ARN)", () => {
    // The webhook rule's statement (its SQS target, job-webhooks.test.ts) is the other one with data keys.
    const dataKeys = eventBridge().filter((s) => list(s.Action).includes("kms:GenerateDataKey") && s.Sid !== "EventBridgeWebhookRule");
    expect(dataKeys).toEqual([
      expect.objectContaining({
        Effect: "Allow",
        Action: ["kms:GenerateDataKey", "kms:Decrypt"],
        Resource: "*",
        Condition: { StringEquals: { "kms:EncryptionContext:aws:events:event-bus:arn": [busArn] } },
      }),
    ]);
    // The ARN in the policy is the bus's: the same name, in the stack's region and account.
    expect(bus.name).toBe(busArn.split("/").pop());
  });

  test("DescribeKey from this account only, and nothing else", () => {
    const describe = eventBridge().filter((s) => list(s.Action).includes("kms:DescribeKey"));
    expect(describe).toEqual([
      expect.objectContaining({ Action: ["kms:DescribeKey"], Condition: { StringEquals: { "aws:SourceAccount": ACCOUNT } } }),
    ]);
    // Besides the bus's three, only the webhook rule's data keys for its encrypted queue.
    expect(eventBridge().map((s) => s.Sid).sort()).toEqual(["EventBridgeBuses", "EventBridgeDescribeKey", "EventBridgeWebhookRule"]);
    expect(eventBridge().flatMap((s) => list(s.Action)).sort()).toEqual([
      "kms:Decrypt",
      "kms:Decrypt",
      "kms:DescribeKey",
      "kms:GenerateDataKey",
      "kms:GenerateDataKey",
    ]);
  });
});

test("the outputs name the bus", () => {
  expect(app.json.output!.eventBusName.value).toBe(ref("aws_cloudwatch_event_bus", busName, "name"));
  expect(app.json.output!.eventBusArn.value).toBe(ref("aws_cloudwatch_event_bus", busName, "arn"));
});

test("any job event not published alarms: JobEventsNotPublished, Sum >= 1 in a minute, to the alarm topic", () => {
  const [topicName] = theResource(app.json, "aws_sns_topic", (t) => /-alarms$/.test(t.name));
  const alarms = resourcesOf(app.json, "aws_cloudwatch_metric_alarm")
    .map(([, alarm]) => alarm)
    .filter((alarm) => alarm.metric_name === "JobEventsNotPublished");
  expect(alarms).toEqual([
    expect.objectContaining({
      alarm_name: "jobs-dev-job-events-not-published",
      // The processor's EMF namespace, dimension-less like JobsFailed.
      namespace: lambdaFor(app.json, "job-processor")[1].environment.variables.METRICS_NAMESPACE,
      statistic: "Sum",
      period: 60,
      evaluation_periods: 1,
      threshold: 1,
      comparison_operator: "GreaterThanOrEqualToThreshold",
      treat_missing_data: "notBreaching",
      alarm_actions: [ref("aws_sns_topic", topicName, "arn")],
    }),
  ]);
  expect(alarms[0].dimensions).toBeUndefined();
});
