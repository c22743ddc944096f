/**
 * File modes decnet refuses to run with, as OpenSSH refuses a readable key:
 * a private key readable by group or others, and an install dir (or its
 * releases/) that another user could write to — code run as root comes
 * from there.
 */
import { statSync } from "node:fs";
import { DecnetError } from "./errors.ts";

const octal = (m: number) => (m & 0o7777).toString(8).padStart(4, "0");

/** A private key must be readable by its owner only. */
export function checkKeyFile(path: string): void {
  const st = statSync(path);
  if (st.mode & 0o077) {
    throw new DecnetError("failed", `private key ${path} is readable by group or others (mode ${octal(st.mode)})`, { hint: `chmod 600 ${path}` });
  }
}

/** A directory decnet runs code from must not be writable by anyone but its owner. */
export function checkNotWritableByOthers(dir: string): void {
  let st;
  try {
    st = statSync(dir);
  } catch {
    return; // created by decnet itself, with its own mode
  }
  if (st.mode & 0o022) {
    throw new DecnetError("failed", `${dir} is writable by group or others (mode ${octal(st.mode)}): another user could replace the code it runs`, { hint: `chmod go-w ${dir}` });
  }
  if (typeof process.geteuid === "function" && st.uid !== process.geteuid() && st.uid !== 0) {
    throw new DecnetError("failed", `${dir} is owned by uid ${st.uid}, not by this user or root`, { hint: `chown $(id -u) ${dir}` });
  }
}
