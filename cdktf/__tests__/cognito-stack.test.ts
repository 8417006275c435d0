import { CognitoUserPool } from "@cdktn/provider-aws/lib/cognito-user-pool";
import { CognitoUserPoolClient } from "@cdktn/provider-aws/lib/cognito-user-pool-client";
import * as fs from "node:fs";
import * as path from "node:path";
import { REPO_ROOT } from "../config";
import { ref, synthStacks, theResource, writeFixtureZips } from "./support";

const zipDir = writeFixtureZips();
const { cognito } = synthStacks({ JOBS_LAMBDA_ZIP_DIR: zipDir });

test("users sign in with a verified email address and a strong password", () => {
  expect(cognito.text).toHaveResourceWithProperties(CognitoUserPool, {
    name: "jobs-dev-users",
    username_attributes: ["email"],
    auto_verified_attributes: ["email"],
    password_policy: {
      minimum_length: 12,
      require_lowercase: true,
      require_numbers: true,
      require_symbols: true,
      require_uppercase: true,
      temporary_password_validity_days: 3,
    },
  });
});

test("deletion protection is off for dev stages and on for prod", () => {
  expect(cognito.text).toHaveResourceWithProperties(CognitoUserPool, { deletion_protection: "INACTIVE" });
  const prod = synthStacks({ JOBS_STAGE: "prod", JOBS_LAMBDA_ZIP_DIR: zipDir });
  expect(prod.cognito.text).toHaveResourceWithProperties(CognitoUserPool, { deletion_protection: "ACTIVE" });
});

test("the app client is public and allows password, SRP and refresh sign-in", () => {
  const [poolName] = theResource(cognito.json, "aws_cognito_user_pool");
  expect(cognito.text).toHaveResourceWithProperties(CognitoUserPoolClient, {
    user_pool_id: ref("aws_cognito_user_pool", poolName, "id"),
    generate_secret: false,
    explicit_auth_flows: ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    id_token_validity: 5,
    access_token_validity: 60,
    refresh_token_validity: 30,
    token_validity_units: [{ id_token: "minutes", access_token: "minutes", refresh_token: "days" }],
  });
});

test("a disabled or deleted user loses access within the bound docs/api.md states, at most 10 minutes", () => {
  // ID tokens are verified offline: one issued just before the user was
  // disabled works until its exp (5 minutes, Cognito's shortest), plus the
  // authorizer's leeway and the API's cache of its answer (job-api.ts).
  // Renewing needs the refresh token, which Cognito refuses for such a user.
  const [, client] = theResource(cognito.json, "aws_cognito_user_pool_client");
  expect(client.token_validity_units[0].id_token).toBe("minutes");
  const { app } = synthStacks({ JOBS_LAMBDA_ZIP_DIR: zipDir });
  const [, authorizer] = theResource(app.json, "aws_api_gateway_authorizer");
  const leeway = Number(
    theResource(app.json, "aws_lambda_function", (f) => f.function_name === "jobs-dev-authorizer")[1].environment
      .variables.JWT_LEEWAY_SECONDS,
  );
  const bound = client.id_token_validity * 60 + leeway + authorizer.authorizer_result_ttl_in_seconds;
  expect(bound).toBe(335);
  expect(bound).toBeLessThanOrEqual(600);
  const apiDoc = fs.readFileSync(path.join(REPO_ROOT, "docs", "api.md"), "utf8");
  expect(apiDoc).toContain("at most 5 min 35 s after it was disabled or deleted");
  expect(client.explicit_auth_flows).toContain("ALLOW_REFRESH_TOKEN_AUTH");
  expect(client.enable_token_revocation).toBe(true);
});

test("outputs the pool, the client and the issuer", () => {
  const [poolName] = theResource(cognito.json, "aws_cognito_user_pool");
  const [clientName] = theResource(cognito.json, "aws_cognito_user_pool_client");
  expect(cognito.json.output).toMatchObject({
    userPoolId: { value: ref("aws_cognito_user_pool", poolName, "id") },
    userPoolArn: { value: ref("aws_cognito_user_pool", poolName, "arn") },
    userPoolClientId: { value: ref("aws_cognito_user_pool_client", clientName, "id") },
    issuer: { value: `https://cognito-idp.us-east-1.amazonaws.com/${ref("aws_cognito_user_pool", poolName, "id")}` },
  });
});
