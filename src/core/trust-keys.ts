/**
 * Ed25519 key files on the master: PKCS#8 PEM (what `openssl pkey` reads),
 * created 0600 and never overwritten, read back with bounds and a type check.
 */
import { type KeyObject, createPrivateKey, generateKeyPairSync } from "node:crypto";
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, statSync, writeSync, chmodSync } from "node:fs";
import { dirname } from "node:path";
import { keyId, publicKeyB64 } from "../protocol/ed25519.ts";
import { fsyncPath } from "../lib/atomic.ts";
import { DecnetError, usageError } from "../lib/errors.ts";

const KEY_FILE_MAX_BYTES = 4096;

export interface LoadedKey {
  key: KeyObject;
  public: string;
  id: string;
  file: string;
}

export function newKeyPair(): KeyObject {
  return generateKeyPairSync("ed25519").privateKey;
}

function loaded(key: KeyObject, file: string): LoadedKey {
  const pub = publicKeyB64(key);
  return { key, public: pub, id: keyId(pub), file };
}

/**
 * Writes a private key to a new file, 0600, durably: losing a root key to a
 * power cut after the trust document names it would lock the fleet.
 */
export function writeKeyFile(file: string, key: KeyObject): LoadedKey {
  if (existsSync(file)) throw usageError(`${file} already exists`, "decnet never overwrites a key file; move it away or pick another path");
  if (!existsSync(dirname(file))) throw usageError(`${dirname(file)} does not exist`, "create the folder first (keep it 0700)");
  const fd = openSync(file, "wx", 0o600);
  try {
    // The mode given to open is filtered by the umask; make it exact.
    chmodSync(file, 0o600);
    writeSync(fd, Buffer.from(key.export({ format: "pem", type: "pkcs8" }) as string));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  fsyncPath(dirname(file));
  return loaded(key, file);
}

/** Reads an Ed25519 private key file; `what` names it in errors ("root key"). */
export function readKeyFile(file: string, what: string): LoadedKey {
  if (!existsSync(file)) throw usageError(`no ${what} at ${file}`);
  const st = statSync(file);
  if (!st.isFile() || st.size > KEY_FILE_MAX_BYTES) throw new DecnetError("failed", `${file} is not a ${what} file (not a small regular file)`);
  let key: KeyObject;
  try {
    key = createPrivateKey(readFileSync(file));
  } catch {
    throw new DecnetError("failed", `${file} is not a ${what}: no PEM private key in it`);
  }
  if (key.asymmetricKeyType !== "ed25519") throw new DecnetError("failed", `${file} is a ${key.asymmetricKeyType} key, but a ${what} must be Ed25519`);
  return loaded(key, file);
}
