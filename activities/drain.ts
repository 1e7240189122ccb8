/**
 * A worker being taken away (SIGTERM: a spot notice, a Kubernetes drain): it takes no new run,
 * and a training chunk in flight stops after the step it is on, commits a checkpoint there and
 * hands the run back, so that no completed step is lost and the run moves at once instead of
 * after a heartbeat timeout.
 */
export class Drain {
  private why: string | null = null;

  request(why: string): void {
    this.why ??= why;
  }

  get requested(): boolean {
    return this.why !== null;
  }

  get reason(): string | null {
    return this.why;
  }
}

/** The worker is draining and the chunk had not completed a step: retryable, so the run is placed elsewhere. */
export class WorkerDrainingError extends Error {
  override name = 'WorkerDrainingError';
}
