// How often a crashed server is restarted automatically. No `vscode` import: unit-tested with node:test.

/** Allows `max` automatic restarts within any `windowMs`; beyond that the user restarts by hand. */
export class RestartBudget {
  private readonly crashes: number[] = [];

  constructor(
    readonly max = 3,
    readonly windowMs = 3 * 60 * 1000,
  ) {}

  /** Records a crash at `now`; true when the server may be restarted. */
  crashed(now: number): boolean {
    this.crashes.push(now);
    while (this.crashes.length > 0 && now - this.crashes[0] > this.windowMs) this.crashes.shift();
    return this.crashes.length <= this.max;
  }

  reset(): void {
    this.crashes.length = 0;
  }
}
