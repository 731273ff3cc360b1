/**
 * A set of message ids that forgets its oldest entries past a bound: the runner's memory of what
 * it delivered, announced, marked read and answered, kept small on a long run.
 *
 * @module
 */

/** An insertion-ordered id set holding at most `max` ids. */
export class BoundedIds {
  readonly #ids = new Set<number>();
  readonly #max: number;

  constructor(max = 10_000) {
    this.#max = max;
  }

  has(id: number): boolean {
    return this.#ids.has(id);
  }

  /** Adds `id`; returns false when it was there already. */
  add(id: number): boolean {
    if (this.#ids.has(id)) return false;
    this.#ids.add(id);
    if (this.#ids.size > this.#max) {
      const oldest = this.#ids.values().next().value;
      if (oldest !== undefined) this.#ids.delete(oldest);
    }
    return true;
  }

  delete(id: number): void {
    this.#ids.delete(id);
  }

  get size(): number {
    return this.#ids.size;
  }
}
