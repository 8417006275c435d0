import { TerraformOutput, TerraformStack } from "cdktn";
import { Construct } from "constructs";
import { CognitoUserPool } from "@cdktn/provider-aws/lib/cognito-user-pool";
import { CognitoUserPoolClient } from "@cdktn/provider-aws/lib/cognito-user-pool-client";
import { AwsProvider } from "@cdktn/provider-aws/lib/provider";
import { Config } from "../config";
import { configureBackend } from "./backend";

/**
 * ID tokens live 5 minutes, Cognito's minimum
 * ("IdTokenValidity duration can range from five minutes to one day",
 * https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_TokenValidityUnitsType.html):
 * the API verifies them offline, so a disabled or deleted user keeps access
 * until the last ID token expires. Clients renew them with the refresh token
 * (the `jobctl` CLI does so within a minute of expiry), which Cognito refuses
 * for a disabled, deleted or signed-out user. docs/api.md, "Bounds".
 */
export const ID_TOKEN_VALIDITY_MINUTES = 5;

export interface CognitoStackProps {
  readonly config: Config;
}

/**
 * The users who may call the API. A stack of its own: it changes rarely and
 * outlives redeployments of the app stack.
 */
export class CognitoStack extends TerraformStack {
  readonly userPool: CognitoUserPool;
  readonly userPoolClient: CognitoUserPoolClient;
  /** The `iss` claim of the pool's tokens. */
  readonly issuer: string;

  constructor(scope: Construct, id: string, props: CognitoStackProps) {
    super(scope, id);
    const { config } = props;
    configureBackend(this, config, id);

    new AwsProvider(this, "aws", {
      region: config.region,
      defaultTags: [{ tags: { project: "jobs", stage: config.stage } }],
    });

    this.userPool = new CognitoUserPool(this, "users", {
      name: `${config.namePrefix}-users`,
      // Users sign in with their email address, verified by Cognito.
      usernameAttributes: ["email"],
      autoVerifiedAttributes: ["email"],
      usernameConfiguration: { caseSensitive: false },
      passwordPolicy: {
        minimumLength: 12,
        requireLowercase: true,
        requireUppercase: true,
        requireNumbers: true,
        requireSymbols: true,
        temporaryPasswordValidityDays: 3,
      },
      accountRecoverySetting: { recoveryMechanism: [{ name: "verified_email", priority: 1 }] },
      // Accounts are handed out by an administrator: an open sign-up would let
      // anyone past the API's authorizer.
      adminCreateUserConfig: { allowAdminCreateUserOnly: true },
      deletionProtection: config.deletionProtection ? "ACTIVE" : "INACTIVE",
    });

    this.userPoolClient = new CognitoUserPoolClient(this, "client", {
      name: `${config.namePrefix}-client`,
      userPoolId: this.userPool.id,
      // A public client (CLI, browser): no secret, password or SRP sign-in.
      generateSecret: false,
      explicitAuthFlows: ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
      preventUserExistenceErrors: "ENABLED",
      enableTokenRevocation: true,
      idTokenValidity: ID_TOKEN_VALIDITY_MINUTES,
      accessTokenValidity: 60,
      refreshTokenValidity: 30,
      tokenValidityUnits: [{ idToken: "minutes", accessToken: "minutes", refreshToken: "days" }],
    });

    this.issuer = `https://cognito-idp.${config.region}.amazonaws.com/${this.userPool.id}`;

    new TerraformOutput(this, "userPoolId", { value: this.userPool.id });
    new TerraformOutput(this, "userPoolArn", { value: this.userPool.arn });
    new TerraformOutput(this, "userPoolClientId", { value: this.userPoolClient.id });
    new TerraformOutput(this, "issuer", { value: this.issuer });
  }
}
