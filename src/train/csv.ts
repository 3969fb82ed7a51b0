// The epoch log as CSV (log.csv beside log.jsonl), for spreadsheets and plotting tools: one header
// row with every column any record has (in order of first appearance), one row per epoch.
// (No TensorBoard event files: no maintained npm package writes them.)

function cell(v: unknown): string {
  if (v === undefined || v === null) return '';
  const s = typeof v === 'string' ? v : typeof v === 'number' ? String(v) : JSON.stringify(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The records as CSV text (header + rows, newline-terminated); '' for no records. */
export function epochsCsv(records: readonly object[]): string {
  if (records.length === 0) return '';
  const cols: string[] = [];
  for (const r of records) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
  const rows = records.map((r) => cols.map((c) => cell((r as Record<string, unknown>)[c])).join(','));
  return `${[cols.join(','), ...rows].join('\n')}\n`;
}
