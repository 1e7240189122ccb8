/**
 * Names shared by the workflow code and the activities (no imports: workflow code may import
 * nothing that does I/O): the slot a gang's rank holds, the rendezvous of a gang attempt, and the
 * slot an online run's rollout replica holds.
 */

/** The slot id rank r of a run holds on its worker. */
export const rankSlot = (runId: string, rank: number): string => `${runId}.rank${rank}`;

/** The prefix every rank slot of a run shares. */
export const rankSlotPrefix = (runId: string): string => `${runId}.rank`;

/**
 * A gang attempt's rendezvous name: fresh per attempt (the workflow execution's id and the
 * attempt count), so a restarted gang never meets a dead one's segment; letters, digits and '-' only.
 */
export const rendezvousName = (executionId: string, attempt: number): string => `ag-${executionId.replace(/[^A-Za-z0-9]/g, '')}-${attempt}`;

/** The slot rollout replica k ≥ 1 of an online run holds (replica 0 is the actor's worker, under the run's own id). */
export const rolloutSlot = (runId: string, replica: number): string => (replica === 0 ? runId : `${runId}-rollout-${replica}`);
