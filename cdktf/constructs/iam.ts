// IAM policy documents as JSON strings. Terraform references (tokens) inside
// the strings resolve to `${...}` interpolations at synth time.

/** One Allow statement: IAM grants nothing that is not listed. */
export interface PolicyStatement {
  /** Explicit actions only: no wildcards (the tests reject `*` in any action). */
  readonly actions: string[];
  readonly resources: string[];
}

export function policyDocument(statements: PolicyStatement[]): string {
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: statements.map((s) => ({ Effect: "Allow", Action: s.actions, Resource: s.resources })),
  });
}

/** The trust policy that lets `principal` assume a role. */
export function trustPolicy(principal: { Service: string } | { AWS: string }): string {
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: [{ Effect: "Allow", Action: "sts:AssumeRole", Principal: principal }],
  });
}

/** The trust policy that lets an AWS service (e.g. `lambda.amazonaws.com`) assume a role. */
export function assumeRolePolicy(service: string): string {
  return trustPolicy({ Service: service });
}
