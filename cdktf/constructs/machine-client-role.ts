import { Construct } from "constructs";
import { IamRole } from "@cdktn/provider-aws/lib/iam-role";
import { IamRolePolicy } from "@cdktn/provider-aws/lib/iam-role-policy";
import { policyDocument, trustPolicy } from "./iam";

/** The client role's name: `<api name>-client`, i.e. `jobs-<stage>[-<region>]-api-client`. */
export function machineClientRoleName(apiName: string): string {
  return `${apiName}-client`;
}

/**
 * Who may assume the client role: the account itself. Naming the account
 * (`arn:aws:iam::<account>:root`) in a trust policy delegates the decision to
 * the account's IAM policies: a user or role of the account may assume it
 * when one of its own policies allows `sts:AssumeRole` on it, and nobody
 * outside the account can
 * (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_create_for-user.html).
 */
export function machineClientTrustPolicy(accountId: string): string {
  return trustPolicy({ AWS: `arn:aws:iam::${accountId}:root` });
}

export interface MachineClientRoleProps {
  /** The REST API's name; the role is named after it. */
  readonly apiName: string;
  readonly accountId: string;
  /** What a session may call: the machine routes of one stage, `<execution ARN>/<stage>/<any method>/machine/<any path>`. */
  readonly machineRoutesArn: string;
}

/**
 * The role machine clients assume to call the machine routes (AWS_IAM,
 * SigV4). Its one permission is `execute-api:Invoke` on the machine routes
 * of this API's stage: a session can call nothing else, not even the Cognito
 * routes (which ignore a signature anyway).
 */
export class MachineClientRole extends Construct {
  readonly role: IamRole;

  constructor(scope: Construct, id: string, props: MachineClientRoleProps) {
    super(scope, id);
    const name = machineClientRoleName(props.apiName);
    this.role = new IamRole(this, "role", {
      name,
      description: "Assumed by machine clients of the job API to call its machine routes (SigV4)",
      assumeRolePolicy: machineClientTrustPolicy(props.accountId),
    });
    new IamRolePolicy(this, "policy", {
      name,
      role: this.role.id,
      policy: policyDocument([{ actions: ["execute-api:Invoke"], resources: [props.machineRoutesArn] }]),
    });
  }
}
