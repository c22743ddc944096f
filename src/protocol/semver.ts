/**
 * Semantic Versioning 2.0.0 precedence, exactly (semver.org §11), for the
 * version floor and the downgrade check: a prerelease sorts below its release
 * (`0.1.0-next` < `0.1.0`), numeric identifiers below alphanumeric ones
 * (`0.1.0-4` < `0.1.0-next`), build metadata is ignored.
 */

export const SEMVER_MAX_LENGTH = 64;

// The regex of semver.org, with no leading zeros in numeric identifiers.
const NUM = "0|[1-9]\\d*";
const PRE_ID = `(?:${NUM}|\\d*[a-zA-Z-][0-9a-zA-Z-]*)`;
const SEMVER_RE = new RegExp(
  `^(${NUM})\\.(${NUM})\\.(${NUM})(?:-(${PRE_ID}(?:\\.${PRE_ID})*))?(?:\\+([0-9a-zA-Z-]+(?:\\.[0-9a-zA-Z-]+)*))?$`,
);

export interface Semver {
  major: string;
  minor: string;
  patch: string;
  /** Prerelease identifiers; empty for a release. */
  pre: string[];
}

/** Parses a version, or null when it is not semver (or longer than 64 characters). */
export function parseSemver(v: string): Semver | null {
  if (typeof v !== "string" || v.length > SEMVER_MAX_LENGTH) return null;
  const m = SEMVER_RE.exec(v);
  if (!m) return null;
  return { major: m[1]!, minor: m[2]!, patch: m[3]!, pre: m[4] === undefined ? [] : m[4].split(".") };
}

export function isSemver(v: string): boolean {
  return parseSemver(v) !== null;
}

const isNumeric = (s: string) => /^\d+$/.test(s);

/**
 * Numeric identifiers have no leading zeros, so a longer one is larger; equal
 * lengths compare as strings. Exact at any size (no Number overflow).
 */
function compareNumeric(a: string, b: string): number {
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareIdentifier(a: string, b: string): number {
  const an = isNumeric(a);
  const bn = isNumeric(b);
  if (an && bn) return compareNumeric(a, b);
  if (an) return -1;
  if (bn) return 1;
  // ASCII order, as the spec says (not locale order).
  return a < b ? -1 : a > b ? 1 : 0;
}

function comparePre(a: string[], b: string[]): number {
  // A version without prerelease identifiers has the higher precedence.
  if (a.length === 0 || b.length === 0) return a.length === b.length ? 0 : a.length === 0 ? 1 : -1;
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const c = compareIdentifier(a[i]!, b[i]!);
    if (c !== 0) return c;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/** -1, 0 or 1 by precedence. Both must be parsed versions. */
export function compareParsed(a: Semver, b: Semver): number {
  return compareNumeric(a.major, b.major) || compareNumeric(a.minor, b.minor) || compareNumeric(a.patch, b.patch) || comparePre(a.pre, b.pre);
}

/** -1, 0 or 1 by precedence; null when either is not semver. */
export function compareSemver(a: string, b: string): -1 | 0 | 1 | null {
  const pa = parseSemver(a);
  const pb = parseSemver(b);
  if (!pa || !pb) return null;
  return compareParsed(pa, pb) as -1 | 0 | 1;
}
