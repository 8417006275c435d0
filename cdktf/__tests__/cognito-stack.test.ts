import { CognitoUserPool } from "@cdktn/provider-aws/lib/cognito-user-pool";
import { CognitoUserPoolClient } from "@cdktn/provider-aws/lib/cognito-user-pool-client";
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
    id_token_validity: 60,
    access_token_validity: 60,
    refresh_token_validity: 30,
    token_validity_units: [{ id_token: "minutes", access_token: "minutes", refresh_token: "days" }],
  });
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
