/** One line a unified diff adds, numbered as in the new file. */
export interface AddedLine {
  line: number;
  text: string;
}

export interface DiffSummary {
  added: AddedLine[];
  removed: number;
  /** Hunks read; 0 for a diff that has none (empty or not in unified format). */
  hunks: number;
}

const HUNK_HEADER = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/;

/**
 * Reads a unified diff. Only lines inside a hunk count, and each hunk is read for exactly the
 * number of lines its header announces: a removed SQL comment (`-- x`) shows up as `--- x`, which
 * would look like a file header to a parser that went by prefixes alone.
 */
export function parseUnifiedDiff(diff: string): DiffSummary {
  const added: AddedLine[] = [];
  let removed = 0;
  let hunks = 0;
  let oldLeft = 0;
  let newLeft = 0;
  let newLine = 0;
  for (const raw of diff.split("\n")) {
    const text = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (oldLeft <= 0 && newLeft <= 0) {
      const header = HUNK_HEADER.exec(text);
      if (header) {
        hunks++;
        oldLeft = header[2] === undefined ? 1 : Number(header[2]);
        newLeft = header[4] === undefined ? 1 : Number(header[4]);
        newLine = Number(header[3]);
        // `+0,0` (file deleted) and `+1,n` both start counting at the announced line.
        if (newLine === 0) newLine = 1;
      }
      continue;
    }
    const mark = text[0];
    if (mark === "+") {
      added.push({ line: newLine++, text: text.slice(1) });
      newLeft--;
    } else if (mark === "-") {
      removed++;
      oldLeft--;
    } else if (mark === "\\") {
      // "\ No newline at end of file" belongs to the line before it.
    } else {
      // Context; some tools strip the leading space of an empty context line.
      newLine++;
      oldLeft--;
      newLeft--;
    }
  }
  return { added, removed, hunks };
}

/** Lines of a file's content: a final newline does not start another line. */
export function countLines(content: string): number {
  if (content === "") return 0;
  const lines = content.split("\n").length;
  return content.endsWith("\n") ? lines - 1 : lines;
}
