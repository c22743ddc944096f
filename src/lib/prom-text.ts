/**
 * The Prometheus text exposition format (0.0.4): metric families with HELP
 * and TYPE lines, escaped label values, one sample per line. A writer only:
 * what is measured, and where it is kept, is the caller's.
 */

export type Labels = Record<string, string>;

export interface Sample {
  /** Appended to the family name: `_bucket`, `_sum`, `_count` for a histogram. */
  suffix?: string;
  labels?: Labels;
  value: number;
}

export interface Family {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram";
  samples: Sample[];
}

export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

const escapeLabel = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
const escapeHelp = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");

function value(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Number.POSITIVE_INFINITY) return "+Inf";
  if (v === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(v);
}

function labels(l: Labels | undefined): string {
  const entries = Object.entries(l ?? {});
  if (!entries.length) return "";
  for (const [k] of entries) if (!LABEL.test(k) || k.startsWith("__")) throw new Error(`bad label name ${k}`);
  return `{${entries.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`;
}

/** The families as exposition text; a bad metric or label name is a programming error and throws. */
export function render(families: Family[]): string {
  const out: string[] = [];
  for (const f of families) {
    if (!NAME.test(f.name)) throw new Error(`bad metric name ${f.name}`);
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) out.push(`${f.name}${s.suffix ?? ""}${labels(s.labels)} ${value(s.value)}`);
  }
  return `${out.join("\n")}\n`;
}

/**
 * A histogram's samples from per-bucket (not cumulative) counts: cumulative
 * `_bucket` lines with `le`, the `+Inf` bucket, `_sum` and `_count`.
 */
export function histogram(bounds: readonly number[], counts: readonly number[], sum: number, count: number, l: Labels = {}): Sample[] {
  let acc = 0;
  const buckets = bounds.map((b, i) => {
    acc += counts[i] ?? 0;
    return { suffix: "_bucket", labels: { ...l, le: String(b) }, value: acc };
  });
  return [...buckets, { suffix: "_bucket", labels: { ...l, le: "+Inf" }, value: count }, { suffix: "_sum", labels: l, value: sum }, { suffix: "_count", labels: l, value: count }];
}
