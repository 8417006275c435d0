// Inline checkov skips for synthesized Terraform JSON.
//
// checkov's terraform_json framework ignores skip comments (its parser drops
// them), so a skip is written where Terraform JSON allows a comment — the
// resource's "//" object (cdktn keeps its metadata there too), as a
// `"checkov": ["checkov:skip=<ID>: <reason>", ...]` list — and
// `cdktf/scripts/checkov.py` (run by `just checkov`) counts a failed check as
// skipped only when the failing resource itself carries that line. A skip
// that no longer matches a failure is an error, so none outlives its reason.
import { Lazy, TerraformResource } from "cdktn";

/** Where the skips of a resource are, in the synthesized JSON: `resource.<type>.<name>["//"].checkov`. */
export const SKIP_KEY = "checkov";

const SKIPS = new WeakMap<TerraformResource, string[]>();

/** Skips checkov check `id` on this one resource, with a one-line justification. */
export function skipCheck(resource: TerraformResource, id: string, reason: string): void {
  if (!/^CKV2?_AWS_\d+$/.test(id)) throw new Error(`not a checkov AWS check id: ${id}`);
  if (!reason.trim() || reason.includes("\n")) throw new Error(`the skip of ${id} needs a one-line reason`);
  let lines = SKIPS.get(resource);
  if (!lines) {
    const all: string[] = [];
    lines = all;
    SKIPS.set(resource, all);
    // One override, rendered at synthesis, holding every skip of the resource.
    resource.addOverride("//.checkov", Lazy.listValue({ produce: () => all }));
  }
  lines.push(`checkov:skip=${id}: ${reason}`);
}
