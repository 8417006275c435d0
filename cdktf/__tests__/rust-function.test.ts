import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Testing } from "cdktn";
import { LambdaFunction } from "@cdktn/provider-aws/lib/lambda-function";
import { loadConfig } from "../config";
import { RustFunction } from "../constructs/rust-function";
import { resourcesOf, TerraformJson } from "./support";

/** Synthesizes one RustFunction named `demo` whose zip holds `bytes`, from a fresh directory. */
function synthFunction(bytes: string): { text: string; lambda: Record<string, unknown> } {
  const zipDir = fs.mkdtempSync(path.join(os.tmpdir(), "jobs-rust-function-"));
  fs.mkdirSync(path.join(zipDir, "demo"));
  fs.writeFileSync(path.join(zipDir, "demo", "bootstrap.zip"), bytes);
  const text = Testing.synthScope((scope) => {
    new RustFunction(scope, "demo", {
      config: loadConfig({ JOBS_LAMBDA_ZIP_DIR: zipDir }),
      name: "demo",
      timeoutSeconds: 5,
      memorySizeMb: 128,
      reservedConcurrency: 1,
      environment: { GREETING: "hello" },
      kmsKeyArn: "arn:aws:kms:us-east-1:123456789012:key/demo",
    });
  });
  const [[, lambda]] = resourcesOf(JSON.parse(text) as TerraformJson, "aws_lambda_function");
  return { text, lambda };
}

describe("source_code_hash", () => {
  test("is Lambda's CodeSha256 of the zip: base64 of its SHA-256", () => {
    const expected = createHash("sha256").update("binary v1").digest("base64");
    expect(synthFunction("binary v1").lambda.source_code_hash).toBe(expected);
  });

  test("stays the same for the same bytes, so an unchanged binary does not redeploy", () => {
    const first = synthFunction("binary v1").lambda;
    const second = synthFunction("binary v1").lambda;
    expect(second.source_code_hash).toBe(first.source_code_hash);
    expect(second.filename).toBe(first.filename);
  });

  test("changes when the bytes change", () => {
    const before = synthFunction("binary v1").lambda;
    const after = synthFunction("binary v2").lambda;
    expect(after.source_code_hash).not.toBe(before.source_code_hash);
    expect(after.filename).not.toBe(before.filename);
  });
});

test("a function is a prebuilt Rust bootstrap with tracing, limits and RUST_LOG", () => {
  const { text } = synthFunction("binary");
  expect(text).toHaveResourceWithProperties(LambdaFunction, {
    function_name: "jobs-dev-demo",
    runtime: "provided.al2023",
    handler: "bootstrap",
    architectures: ["arm64"],
    timeout: 5,
    memory_size: 128,
    reserved_concurrent_executions: 1,
    environment: { variables: { GREETING: "hello", RUST_LOG: "info" } },
    tracing_config: { mode: "Active" },
  });
});
