import { createHash } from "node:crypto";

/**
 * RFC 6962 (Certificate Transparency) Merkle tree hashing, kept as a compact range: the roots of the
 * perfect subtrees along the tree's right edge, largest first, one per set bit of the size. Appending a
 * leaf merges O(log n) subtrees at most (one on average) and the root folds the range, so neither the
 * appender nor the verifier ever re-reads the log.
 */

const LEAF_PREFIX = Buffer.from([0]);
const NODE_PREFIX = Buffer.from([1]);

export const leafHash = (leaf: Buffer | string): Buffer =>
  createHash("sha256").update(LEAF_PREFIX).update(leaf).digest();

export const nodeHash = (left: Buffer, right: Buffer): Buffer =>
  createHash("sha256").update(NODE_PREFIX).update(left).update(right).digest();

/** The root of the empty tree: SHA-256 of the empty string (RFC 6962 section 2.1). */
export const EMPTY_ROOT = createHash("sha256").digest();

/** The right-edge frontier of a tree of `size` leaves. Immutable: `append` returns a new one. */
export class Frontier {
  private constructor(
    readonly size: bigint,
    /** Subtree roots, largest (leftmost) first. */
    readonly hashes: readonly Buffer[],
  ) {}

  static empty(): Frontier {
    return new Frontier(0n, []);
  }

  /** Appends leaf hashes in order. */
  append(leaves: readonly Buffer[]): Frontier {
    const stack = [...this.hashes];
    let size = this.size;
    for (const leaf of leaves) {
      let h = leaf;
      // Each trailing 1 bit of the old size is a complete subtree of the new leaf's size to merge with.
      for (let n = size; n & 1n; n >>= 1n) h = nodeHash(stack.pop() as Buffer, h);
      stack.push(h);
      size += 1n;
    }
    return new Frontier(size, stack);
  }

  root(): Buffer {
    if (this.hashes.length === 0) return EMPTY_ROOT;
    let r = this.hashes[this.hashes.length - 1] as Buffer;
    for (let i = this.hashes.length - 2; i >= 0; i--) r = nodeHash(this.hashes[i] as Buffer, r);
    return r;
  }

  /** Stored form: base64 of the concatenated subtree roots (the size is the record's seq). */
  encode(): string {
    return Buffer.concat(this.hashes as Buffer[]).toString("base64");
  }

  static decode(size: bigint, encoded: string): Frontier {
    const bytes = Buffer.from(encoded, "base64");
    let bits = 0;
    for (let n = size; n > 0n; n >>= 1n) if (n & 1n) bits++;
    if (bytes.length !== bits * 32) {
      throw new Error(`A stored frontier for size ${size} holds ${bytes.length} bytes, not ${bits * 32}.`);
    }
    const hashes: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += 32) hashes.push(bytes.subarray(i, i + 32));
    return new Frontier(size, hashes);
  }
}

/** RFC 6962's MTH over a list of leaf hashes, by its recursive definition: for tests and cross-checks. */
export function referenceRoot(leaves: readonly Buffer[]): Buffer {
  if (leaves.length === 0) return EMPTY_ROOT;
  if (leaves.length === 1) return leaves[0] as Buffer;
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return nodeHash(referenceRoot(leaves.slice(0, k)), referenceRoot(leaves.slice(k)));
}
