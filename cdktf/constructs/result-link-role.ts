import { Construct } from "constructs";
import { IamRole } from "@cdktn/provider-aws/lib/iam-role";
import { IamRolePolicy } from "@cdktn/provider-aws/lib/iam-role-policy";
import { policyDocument, trustPolicy } from "./iam";

/**
 * How long a result link works: a little less than the link role's session
 * (one hour), so that every link gets its whole lifetime from a session that
 * outlives it (functions/jobs-aws/src/links.rs).
 */
export const RESULT_LINK_TTL_SECONDS = 1800;

/**
 * The longest session STS grants a role assumed from a Lambda function's own
 * session ("role chaining"): one hour
 * (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_terms-and-concepts.html#iam-term-role-chaining).
 */
export const RESULT_LINK_SESSION_SECONDS = 3600;

/** The link role's name; its ARN is known before the role exists (the function's environment names it). */
export function resultLinkRoleName(prefix: string): string {
  return `${prefix}-result-links`;
}

export interface ResultLinkRoleProps {
  readonly namePrefix: string;
  /** The role of the function that signs the links (job-status): the only one that may assume this one. */
  readonly signerRoleArn: string;
  /** What the links may read: `<results bucket ARN>/results/*`. */
  readonly resultObjects: string;
  /** The results bucket's key: reading an SSE-KMS object needs it. */
  readonly kmsKeyArn: string;
}

/**
 * The role result links are signed with. A presigned URL stops working when
 * the credentials that signed it expire
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-presigned-url.html),
 * and a Lambda function's own credentials carry no expiry the SDK can read:
 * job-status signs with sessions of this role instead, whose expiry STS
 * states, renewing them before they are too short for a whole link. The role
 * may read result objects and nothing else.
 */
export class ResultLinkRole extends Construct {
  readonly role: IamRole;

  constructor(scope: Construct, id: string, props: ResultLinkRoleProps) {
    super(scope, id);
    this.role = new IamRole(this, "role", {
      name: resultLinkRoleName(props.namePrefix),
      maxSessionDuration: RESULT_LINK_SESSION_SECONDS,
      assumeRolePolicy: trustPolicy({ AWS: props.signerRoleArn }),
    });
    new IamRolePolicy(this, "policy", {
      name: resultLinkRoleName(props.namePrefix),
      role: this.role.id,
      policy: policyDocument([
        { actions: ["s3:GetObject"], resources: [props.resultObjects] },
        { actions: ["kms:Decrypt"], resources: [props.kmsKeyArn] },
      ]),
    });
  }
}
