/**
 * A bounded single-consumer queue. When a slow consumer lets it fill up, the queued items are
 * dropped and `overflowed` is set, so the consumer can re-read what it missed from the database
 * instead of the process holding an unbounded backlog.
 */
export class BoundedQueue<T> {
  private items: T[] = [];
  private wake: (() => void) | null = null;
  private watched: AbortSignal | null = null;
  overflowed = false;

  constructor(private readonly max: number) {}

  push(item: T): void {
    if (this.items.length >= this.max) {
      this.items = [];
      this.overflowed = true;
    } else {
      this.items.push(item);
    }
    this.wake?.();
  }

  /** Takes everything queued, waiting until there is something, an overflow, or the signal aborts. */
  async drain(signal?: AbortSignal): Promise<T[]> {
    // One abort listener for the consumer's whole life, not one added and removed per wait.
    if (signal && this.watched !== signal) {
      this.watched = signal;
      signal.addEventListener("abort", () => this.wake?.(), { once: true });
    }
    while (this.items.length === 0 && !this.overflowed && !signal?.aborted) {
      await new Promise<void>((resolve) => {
        this.wake = () => {
          this.wake = null;
          resolve();
        };
      });
    }
    const out = this.items;
    this.items = [];
    return out;
  }
}
