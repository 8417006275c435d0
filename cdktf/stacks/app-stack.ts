import { TerraformOutput, TerraformStack } from "cdktn";
import { Construct } from "constructs";
import { DataAwsCallerIdentity } from "@cdktn/provider-aws/lib/data-aws-caller-identity";
import { DataAwsRegion } from "@cdktn/provider-aws/lib/data-aws-region";
import { DynamodbTable } from "@cdktn/provider-aws/lib/dynamodb-table";
import { LambdaEventSourceMapping } from "@cdktn/provider-aws/lib/lambda-event-source-mapping";
import { AwsProvider } from "@cdktn/provider-aws/lib/provider";
import { S3Bucket } from "@cdktn/provider-aws/lib/s3-bucket";
import { S3BucketPublicAccessBlock } from "@cdktn/provider-aws/lib/s3-bucket-public-access-block";
import { S3BucketServerSideEncryptionConfigurationA } from "@cdktn/provider-aws/lib/s3-bucket-server-side-encryption-configuration";
import { Config } from "../config";
import { ALLOWED_ROUTES, JobApi } from "../constructs/job-api";
import { QueueWithDlq } from "../constructs/queue-with-dlq";
import { RustFunction } from "../constructs/rust-function";

/**
 * The receive on which a failing job's message moves to the DLQ. The processor
 * gets the same number (MAX_RECEIVE_COUNT) to mark the job `failed` on that
 * receive.
 */
export const MAX_RECEIVE_COUNT = 3;

const PROCESSOR_TIMEOUT_SECONDS = 30;

export interface AppStackProps {
  readonly config: Config;
  /** The Cognito issuer (`iss` of ID tokens), from the cognito stack. */
  readonly cognitoIssuer: string;
  /** The app client id (`aud` of ID tokens), from the cognito stack. */
  readonly userPoolClientId: string;
}

/** The job service: API, queue, processing functions, table and results bucket. */
export class AppStack extends TerraformStack {
  constructor(scope: Construct, id: string, props: AppStackProps) {
    super(scope, id);
    const { config } = props;
    const prefix = config.namePrefix;

    new AwsProvider(this, "aws", {
      region: config.region,
      defaultTags: [{ tags: { project: "jobs", stage: config.stage } }],
    });
    const region = new DataAwsRegion(this, "current-region");
    const account = new DataAwsCallerIdentity(this, "current-account");

    const jobQueue = new QueueWithDlq(this, "job-queue", {
      name: `${prefix}-job-queue`,
      consumerTimeoutSeconds: PROCESSOR_TIMEOUT_SECONDS,
      maxReceiveCount: MAX_RECEIVE_COUNT,
    });

    const table = new DynamodbTable(this, "jobs-table", {
      name: `${prefix}-jobs`,
      billingMode: "PAY_PER_REQUEST",
      hashKey: "jobRequestId",
      attribute: [{ name: "jobRequestId", type: "S" }],
      pointInTimeRecovery: { enabled: true },
      serverSideEncryption: { enabled: true },
      deletionProtectionEnabled: config.deletionProtection,
    });

    // Results are reproducible job output: the bucket is destroyed with the
    // stack, objects included.
    const results = new S3Bucket(this, "results-bucket", {
      bucket: `${prefix}-results-${account.accountId}`,
      forceDestroy: true,
    });
    new S3BucketPublicAccessBlock(this, "results-public-access-block", {
      bucket: results.id,
      blockPublicAcls: true,
      blockPublicPolicy: true,
      ignorePublicAcls: true,
      restrictPublicBuckets: true,
    });
    new S3BucketServerSideEncryptionConfigurationA(this, "results-encryption", {
      bucket: results.id,
      rule: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" } }],
    });
    const resultObjects = `${results.arn}/results/*`;

    const authorizer = new RustFunction(this, "authorizer", {
      config,
      name: "authorizer",
      timeoutSeconds: 10,
      memorySizeMb: 128,
      reservedConcurrency: 20,
      environment: {
        COGNITO_ISSUER: props.cognitoIssuer,
        COGNITO_APP_CLIENT_ID: props.userPoolClientId,
        JWKS_URL: `${props.cognitoIssuer}/.well-known/jwks.json`,
        ALLOWED_ROUTES,
      },
    });

    const simulator = new RustFunction(this, "batch-simulator", {
      config,
      name: "batch-simulator",
      timeoutSeconds: 20,
      memorySizeMb: 256,
      reservedConcurrency: 20,
      environment: { RESULTS_BUCKET_NAME: results.bucket },
      permissions: [{ actions: ["s3:PutObject"], resources: [resultObjects] }],
    });

    const processor = new RustFunction(this, "job-processor", {
      config,
      name: "job-processor",
      timeoutSeconds: PROCESSOR_TIMEOUT_SECONDS,
      memorySizeMb: 256,
      reservedConcurrency: 10,
      environment: {
        JOBS_TABLE_NAME: table.name,
        BATCH_SIMULATOR_FUNCTION_NAME: simulator.function.functionName,
        JOB_QUEUE_URL: jobQueue.queue.url,
        MAX_RECEIVE_COUNT: String(MAX_RECEIVE_COUNT),
        RETRY_BACKOFF_BASE_SECONDS: "2",
      },
      permissions: [
        { actions: ["dynamodb:UpdateItem"], resources: [table.arn] },
        { actions: ["lambda:InvokeFunction"], resources: [simulator.function.arn] },
        {
          actions: [
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ChangeMessageVisibility",
          ],
          resources: [jobQueue.queue.arn],
        },
      ],
    });

    const jobStatus = new RustFunction(this, "job-status", {
      config,
      name: "job-status",
      timeoutSeconds: 10,
      memorySizeMb: 128,
      reservedConcurrency: 20,
      environment: { JOBS_TABLE_NAME: table.name, PRESIGNED_URL_TTL_SECONDS: "3600" },
      permissions: [
        { actions: ["dynamodb:GetItem"], resources: [table.arn] },
        // The presigned result link is signed with this role's credentials.
        { actions: ["s3:GetObject"], resources: [resultObjects] },
      ],
    });

    new LambdaEventSourceMapping(this, "job-processor-trigger", {
      eventSourceArn: jobQueue.queue.arn,
      functionName: processor.function.functionName,
      batchSize: 10,
      maximumBatchingWindowInSeconds: 1,
      // The processor reports the failed messages of a batch; only those return to the queue.
      functionResponseTypes: ["ReportBatchItemFailures"],
      // Stays below the processor's reserved concurrency, so that SQS
      // deliveries are not throttled (a throttled delivery still counts as a receive).
      scalingConfig: { maximumConcurrency: 5 },
    });

    const api = new JobApi(this, "api", {
      name: `${prefix}-api`,
      queue: jobQueue.queue,
      authorizerFunction: authorizer.function,
      jobStatusFunction: jobStatus.function,
      region: region.region,
      accountId: account.accountId,
    });

    new TerraformOutput(this, "apiUrl", { value: api.stage.invokeUrl });
    new TerraformOutput(this, "jobQueueUrl", { value: jobQueue.queue.url });
    new TerraformOutput(this, "deadLetterQueueUrl", { value: jobQueue.deadLetterQueue.url });
    new TerraformOutput(this, "jobsTableName", { value: table.name });
    new TerraformOutput(this, "resultsBucketName", { value: results.bucket });
    new TerraformOutput(this, "region", { value: region.region });
  }
}
