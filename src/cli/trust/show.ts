/** `decnet trust show [--dir DIR] [--json]`: version, roots, signers, revoked ids, floor. */
import { defineCommand } from "citty";
import { action } from "../_action.ts";
import { jsonArg, trustDirArg } from "../_args.ts";
import { out, printJson, table } from "../_render.ts";

export default defineCommand({
  meta: { name: "show", description: "Print the trust document" },
  args: { ...trustDirArg, ...jsonArg },
  run: action(async ({ args }) => {
    const { showTrust } = await import("../../core/trust.ts");
    const v = showTrust({ dir: args.dir });
    if (args.json) return printJson(v);
    out(`trust document ${v.file}: version ${v.version}, issued ${v.issued_at}, floor ${v.floor ?? "none"}`);
    out(table(["key", "id", "detail"], [
      ...v.roots.map((r) => ["root", r.id, `fingerprint ${r.fingerprint}`]),
      ...v.signers.map((s) => ["signer", s.id, `${s.expired ? "EXPIRED" : "expires"} ${s.expires}, certified by ${s.certified_by}`]),
      ...v.revoked.map((id) => ["revoked", id, ""]),
    ]));
  }),
});
